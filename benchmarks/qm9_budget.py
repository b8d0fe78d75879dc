"""QM9 quality per CPU budget (issue 16): which denoiser to train when the budget is a few
CPU-hours on one thread.

  train     train one architecture of ARCHS with experiment=qm9's recipe on OMP_NUM_THREADS
            threads (one for the curve; each snapshot records its chunk's), and export its
            EMA weights at each budget point (CPU-minutes of the training loop over all its
            threads, time.process_time, so that other jobs on a shared machine do not shorten
            a run).
            Resumable: a stopped run continues from its last budget point.
  evaluate  sample every exported snapshot with one sampler (--sampler, default the
            experiment's; EDM's metrics of n molecules, the same seed for all), cached per
            snapshot, sampler and n; into results/qm9_budget.json (every row sampled so far)
            and a plot of stability and validity against CPU-minutes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/qm9_budget.py train --arch nequip_3 \\
        --workdir ../runs/qm9_budget --minutes 5 15 30 45
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/qm9_budget.py evaluate --workdir ../runs/qm9_budget \\
        --sampler ddpm:100:spacing=trailing -n 100
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from device_step import open_trainer, write_json

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "qm9_budget.json"
QM9_TRAIN = 100_000  # molecules in EDM's train split (for epochs)

# The architectures compared, as overrides of experiment=qm9 (EDM's EGNN 9 x 256), and a
# learning rate for a short budget (EDM's 1e-4 is set for millions of steps; 3e-4 as
# experiment=qm9_alpha_cpu) on the architecture that led at 45 CPU-minutes.
ARCHS = {
    "egnn_9x256": [],
    "egnn_6x128": ["task.hidden=128", "task.layers=6"],
    "nequip_3": ["task.model=nequip", "task.layers=3"],
    "egnn_6x128_lr3e-4": ["task.hidden=128", "task.layers=6", "optim.lr=3e-4"],  # experiment=qm9_cpu
}


def _snapshots(arch_dir: Path) -> list[dict]:
    path = arch_dir / "snapshots.json"
    return json.loads(path.read_text()) if path.exists() else []


def cmd_train(args) -> int:
    from molgen.train import CHECKPOINT, export_model

    arch_dir = Path(args.workdir) / args.arch
    # checkpoints only at budget points (train() saves when it stops): a resumed run starts
    # from the last snapshot, whose CPU time is recorded
    trainer, _ = open_trainer("qm9", "cpu", arch_dir,
                              ["checkpoint_every=100000000", "steps=100000000", *ARCHS[args.arch]])
    snapshots = _snapshots(arch_dir)
    spent = snapshots[-1]["cpu_seconds"] if snapshots else 0.0
    if snapshots and snapshots[-1]["step"] != trainer.step:
        raise SystemExit(f"{arch_dir}: checkpoint at step {trainer.step}, last snapshot at "
                         f"{snapshots[-1]['step']}; start this architecture afresh")
    params = sum(p.numel() for p in trainer.model.parameters())
    for minutes in sorted(args.minutes):
        if minutes * 60 <= spent:
            continue
        cpu0, wall0 = time.process_time(), time.perf_counter()
        trainer.train(minutes * 60 - spent, clock=time.process_time)
        spent += time.process_time() - cpu0
        model = arch_dir / f"model_{minutes:g}min.pt"
        export_model(arch_dir / CHECKPOINT, model)
        snapshots.append({"minutes": minutes, "step": trainer.step, "cpu_seconds": spent,
                          "wall_seconds_this_chunk": time.perf_counter() - wall0,
                          "epochs": trainer.step * trainer.cfg.batch_size / QM9_TRAIN,
                          "parameters": params, "model": model.name,
                          "threads": torch.get_num_threads(),
                          "loadavg": list(os.getloadavg())})
        write_json(arch_dir / "snapshots.json", snapshots)
        print(f"{args.arch}: {minutes:g} CPU-min, step {trainer.step}", flush=True)
    return 0


def cmd_evaluate(args) -> int:
    results = {"protocol": "experiment=qm9 (EDM's recipe: polynomial schedule, eps, lr 1e-4, "
                           "batch 64, EMA 0.9999 with warm-up), one CPU thread per run unless a "
                           "snapshot records more ('threads': those of the chunk that ended "
                           "there); budget = CPU seconds of the training loop over all its "
                           "threads (time.process_time); each snapshot's "
                           "EMA weights sampled with one or more samplers ('default': the "
                           "experiment's), the same seed, hence the same atom counts and x_T, for "
                           "all; EDM's metrics (molgen.metrics.molecules). QM9 generation has no "
                           "held-out choice: no setting was tuned on these samples.",
               "seed": args.seed, "threads": torch.get_num_threads(),
               "machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__,
                           "platform": platform.platform()},
               "architectures": {}}
    for arch in ARCHS:
        arch_dir = Path(args.workdir) / arch
        rows = []
        for snap in _snapshots(arch_dir):
            if args.at is None or snap["minutes"] in args.at:
                _evaluate(arch_dir, snap, args)
            found = sorted(arch_dir.glob(f"eval_{snap['minutes']:g}min_*_seed{args.seed}.json"))
            rows.append({**snap, "samples": {entry["row"]: entry for entry in
                                             (json.loads(path.read_text()) for path in found)}})
            for label, metrics in rows[-1]["samples"].items():
                print(f"{arch} {snap['minutes']:>5g} min step {snap['step']:>6} {label}: atom "
                      f"stability {100 * metrics['atom_stability']:.1f}%, molecules "
                      f"{100 * metrics['molecule_stability']:.1f}%, valid "
                      f"{100 * metrics['validity']:.1f}%", flush=True)
        if rows:
            results["architectures"][arch] = {"overrides": ARCHS[arch], "snapshots": rows}
    out = Path(args.out)
    write_json(out, results)
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


def _evaluate(arch_dir: Path, snap: dict, args) -> None:
    """EDM's metrics of args.n molecules of a snapshot with args.sampler ('default': the
    experiment's), into arch_dir/eval_<minutes>min_<row>_seed<seed>.json (row: the sampler
    and n) beside the samples (.sdf), unless that file exists."""
    from molgen.diffusion import SamplerConfig
    from molgen.train import load_trained

    row = f"{args.sampler.replace(':', '_')}_n{args.n}"
    cached = arch_dir / f"eval_{snap['minutes']:g}min_{row}_seed{args.seed}.json"
    if cached.exists():
        return
    trained = load_trained(arch_dir / snap["model"])
    sampler = (trained.sampler if args.sampler == "default" else
               SamplerConfig.from_spec(args.sampler, trained.sampler))
    cpu0 = time.process_time()
    metrics = trained.task.evaluate(trained.denoiser, sampler, args.n, seed=args.seed,
                                    progress=True, path=cached.with_suffix(".sdf"))
    write_json(cached, {**metrics, "row": row, "n": args.n, "sampler": sampler.to_dict(),
                        "sampling_cpu_seconds": time.process_time() - cpu0})


def plot(results: dict, path: Path) -> None:
    """Atom and molecule stability and validity against training CPU-minutes: a colour per
    architecture, a line style per sampler row."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("atom_stability", "atom stability"), ("molecule_stability", "molecule stability"),
            ("validity", "validity (RDKit)")]
    labels = sorted({label for entry in results["architectures"].values()
                     for snap in entry["snapshots"] for label in snap["samples"]})
    styles = dict(zip(labels, ["-", "--", ":", "-."] * len(labels)))
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.8))
    for ax, (key, title) in zip(axes, keys):
        for colour, (arch, entry) in enumerate(results["architectures"].items()):
            for label in labels:
                points = [(snap["cpu_seconds"] / 60, 100 * snap["samples"][label][key])
                          for snap in entry["snapshots"] if label in snap["samples"]]
                if points:
                    ax.plot(*zip(*points), styles[label], marker="o", color=f"C{colour}",
                            label=f"{arch}, {label}")
        ax.set(title=title, xlabel="training CPU-minutes", ylabel="%", ylim=(0, 100))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    fig.suptitle("QM9, experiment=qm9's recipe per architecture")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(required=True)
    p = sub.add_parser("train", help="train one architecture, snapshot at budget points")
    p.add_argument("--arch", choices=sorted(ARCHS), required=True)
    p.add_argument("--workdir", default="runs/qm9_budget")
    p.add_argument("--minutes", type=float, nargs="+", default=[5, 15, 30, 45],
                   help="budget points, CPU-minutes of training")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", help="sample every snapshot; JSON and plot")
    p.add_argument("--workdir", default="runs/qm9_budget")
    p.add_argument("-n", type=int, default=250, help="molecules per snapshot")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DEFAULT_JSON))
    p.add_argument("--sampler", default="default",
                   help="kind:steps[:setting=value...] (SamplerConfig.from_spec on the snapshot's), "
                        "or default: the experiment's")
    p.add_argument("--at", type=float, nargs="*", default=None,
                   help="sample only the snapshots at these CPU-minutes (default: all); the JSON "
                        "holds every row sampled so far")
    p.set_defaults(func=cmd_evaluate)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
