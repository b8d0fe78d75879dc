"""The parts that the benchmarks' device steps (qm9_generation.py and image_fid.py `device`,
run on the lent GPU machine by gpu.sh) share: a Trainer for a wall-clock budget, and what comes
back from the machine and how it is reassembled here; and the benchmarks' result JSON (written
atomically, and merged with the rows of an earlier run of the same setting).

The device tool returns at most MAX_FILES files from $OUT, each under 16 MiB and MAX_BYTES in
all: a large file (an exported model, 10k images) travels as NAME.part0, NAME.part1, ... and
`join_parts` rebuilds NAME from them.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch

PART_BYTES = 15 * 2**20
MAX_FILES = 8
MAX_BYTES = 63 * 2**20  # 64 MiB, less a margin for the small files


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (for wall-clock timings)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def open_trainer(experiment: str, device: str, workdir: Path, overrides: list[str]):
    """A single-process Trainer of `experiment` in workdir (resumed when it holds a checkpoint),
    and a description of the device for the summary."""
    from molgen.train import Trainer, init_distributed, load_config

    cfg = load_config([f"experiment={experiment}", f"device={device}", f"out_dir={workdir}",
                       "progress=false", *overrides])
    env = init_distributed(cfg.device)
    info = {"name": str(env.device)}
    if env.device.type == "cuda":
        props = torch.cuda.get_device_properties(env.device)
        info = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                "multiprocessors": props.multi_processor_count}
    return Trainer(cfg, env), info


def train_for(trainer, seconds: float, examples: int) -> dict:
    """Train for `seconds` of wall time (however many steps that is), checkpoint, and return
    the summary of the run: steps, throughput, epochs over `examples` training examples."""
    from molgen.train import LOG, read_log

    first, start = trainer.step, time.perf_counter()
    trainer.train(seconds)  # the experiments' `steps` is a ceiling that the clock comes to first
    elapsed = time.perf_counter() - start
    trainer.cfg.steps = trainer.step  # the checkpoint's config records how far it trained
    trainer.save()
    cfg, done = trainer.cfg, trainer.step - first
    losses = [r["loss"] for r in read_log(trainer.out / LOG)][-500:]
    return {"steps": trainer.step, "steps_this_run": done, "batch_size": cfg.batch_size,
            "seconds": elapsed, "steps_per_second": done / elapsed,
            "examples_per_second": done * cfg.batch_size / elapsed,
            "epochs": trainer.step * cfg.batch_size / examples,
            "final_loss_mean_last_500": sum(losses) / len(losses) if losses else None,
            "ema_decay": cfg.ema_decay, "lr": cfg.optim.lr, "bf16": cfg.bf16,
            "parameters": sum(p.numel() for p in trainer.model.parameters())}


def write_json(path: Path, data: dict) -> None:
    """Write `data` as JSON atomically (a call stopped mid-write leaves the previous file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def earlier_rows(path: Path, setting: dict, redone: list, row_id: str) -> list[dict]:
    """The rows of an earlier result JSON at `path` that this run does not redo (their
    `row_id` not in `redone`), provided it was written with the same `setting`."""
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    held = {key: old.get(key) for key in setting}
    if held != setting:
        raise SystemExit(f"--merge: {path} holds another setting {held}, not {setting}")
    return [row for row in old["rows"] if row[row_id] not in redone]


def parts_needed(nbytes: int) -> int:
    return max(1, math.ceil(nbytes / PART_BYTES))


def split_file(path: Path, out_dir: Path) -> list[str]:
    """Copy `path` into out_dir as NAME.part0, NAME.part1, ... of at most PART_BYTES each."""
    data, names = path.read_bytes(), []
    for k in range(parts_needed(len(data))):
        name = f"{path.name}.part{k}"
        (out_dir / name).write_bytes(data[k * PART_BYTES:(k + 1) * PART_BYTES])
        names.append(name)
    return names


def fits(out_dir: Path, nbytes: int, small_files: tuple[str, ...] = ("summary.json", "device.log")) -> bool:
    """Whether a file of nbytes, split into parts, still fits into what comes back from
    out_dir, next to what is there and the small_files still to come."""
    files = [p for p in out_dir.iterdir() if p.is_file()]
    names = {p.name for p in files} | set(small_files)
    used = sum(p.stat().st_size for p in files)
    return len(names) + parts_needed(nbytes) <= MAX_FILES and used + nbytes <= MAX_BYTES


def join_parts(run_dir: Path, name: str) -> Path:
    """Reassemble NAME from NAME.part0, NAME.part1, ... (written by a device step)."""
    target = run_dir / name
    parts = sorted(run_dir.glob(f"{name}.part*"), key=lambda p: int(p.suffix[len(".part"):]))
    if parts and not target.exists():
        tmp = target.with_name(name + ".tmp")
        with open(tmp, "wb") as f:
            for p in parts:
                f.write(p.read_bytes())
        os.replace(tmp, target)
    return target
