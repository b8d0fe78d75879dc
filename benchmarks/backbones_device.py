"""Train backbone-model variants on the lent GPU machine for a wall-clock budget (issue 18).

Each variant is `experiment=backbones` with its own overrides, trained in its own process (the
small EGNN leaves the GPU mostly idle, so variants run side by side).  What comes back per
variant: its checkpoint (model, EMA, optimizer: training can resume here on the CPU) and a
summary with steps and throughput.  The variants are then compared on the validation split
here (benchmarks/backbones.py --split valid) before any is exported or shipped.

    bash benchmarks/gpu.sh --prepare backbones                       # here, once
    run(command="bash benchmarks/gpu.sh bash -c 'for v in \"A task.crop=128\" \"C\"; do
        python3 benchmarks/backbones_device.py $v --seconds 500 --out $OUT & done; wait'",
        carry=[".gpu"], timeout_s=580)

A second call while the machine is still warm resumes each variant (add steps=100000 to lift
the experiment's step ceiling, and give it the seconds that are left).  The device returns at
most 8 files of up to 16 MiB: three variants of EGNN 6 x 128 (13 MB checkpoints) fit.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from device_step import open_trainer, train_for, write_json


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="variant name: files NAME.pt and NAME.json in --out")
    p.add_argument("override", nargs="*", help="hydra overrides on top of experiment=backbones")
    p.add_argument("--seconds", type=float, required=True, help="wall-clock training budget")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--workdir", type=Path, default=Path("runs/device"))
    p.add_argument("--device", default="cuda")
    args = p.parse_args(argv)
    work = args.workdir / args.name
    trainer, gpu = open_trainer("backbones", args.device, work, ["checkpoint_every=500", *args.override])
    summary = {"name": args.name, "overrides": args.override, "gpu": gpu, "torch": torch.__version__,
               **train_for(trainer, args.seconds, len(trainer.task.segments()))}
    print(summary, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(trainer.out / "checkpoint.pt", args.out / f"{args.name}.pt")
    write_json(args.out / f"{args.name}.json", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
