"""QM9 quality per CPU budget (issue 16): which denoiser to train when the budget is a few
CPU-hours on one thread.

  train     train one architecture of ARCHS with experiment=qm9's recipe on one thread, and
            export its EMA weights at each budget point (CPU-minutes of the training loop,
            time.process_time, so that other jobs on a shared machine do not shorten a run).
            Resumable: a stopped run continues from its last budget point.
  evaluate  sample every exported snapshot with the experiment's sampler (EDM's metrics on n
            molecules, the same seed for all), into results/qm9_budget.json and a plot of
            stability and validity against CPU-minutes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/qm9_budget.py train --arch nequip_3 \\
        --workdir ../runs/qm9_budget --minutes 5 15 30 45
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/qm9_budget.py evaluate --workdir ../runs/qm9_budget
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

# The architectures compared, as overrides of experiment=qm9 (EDM's EGNN 9 x 256).
ARCHS = {
    "egnn_9x256": [],
    "egnn_6x128": ["task.hidden=128", "task.layers=6"],
    "nequip_3": ["task.model=nequip", "task.layers=3"],
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
                          "loadavg": list(os.getloadavg())})
        write_json(arch_dir / "snapshots.json", snapshots)
        print(f"{args.arch}: {minutes:g} CPU-min, step {trainer.step}", flush=True)
    return 0


def cmd_evaluate(args) -> int:
    results = {"protocol": "experiment=qm9 (EDM's recipe: polynomial schedule, eps, lr 1e-4, "
                           "batch 64, EMA 0.9999 with warm-up), one CPU thread per run; budget = "
                           "CPU seconds of the training loop (time.process_time); each snapshot's "
                           "EMA weights sampled with the experiment's sampler (other_samplers: "
                           "the same molecules with another sampler, at some snapshots), the same "
                           "seed and atom counts for all; EDM's metrics (molgen.metrics.molecules). QM9 "
                           "generation has no held-out choice: no setting was tuned on these "
                           "samples.",
               "n": args.n, "seed": args.seed, "threads": torch.get_num_threads(),
               "machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__,
                           "platform": platform.platform()},
               "architectures": {}}
    for arch in ARCHS:
        arch_dir = Path(args.workdir) / arch
        rows = []
        for snap in _snapshots(arch_dir):
            stem = f"eval_{snap['minutes']:g}min_n{args.n}_seed{args.seed}"
            row = {**snap, **_evaluated(arch_dir, snap, None, stem, args)}
            if args.sampler and snap["minutes"] in args.at:
                label = args.sampler.replace(":", "_")
                _evaluated(arch_dir, snap, args.sampler, f"{stem}_{label}", args)
            others = [json.loads(path.read_text()) for path in sorted(arch_dir.glob(f"{stem}_*.json"))]
            row["other_samplers"] = {entry["spec"]: entry for entry in others}
            rows.append(row)
            for spec, metrics in [("default", row), *row["other_samplers"].items()]:
                print(f"{arch} {snap['minutes']:>5g} min step {snap['step']:>6} {spec}: atom "
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


def _evaluated(arch_dir: Path, snap: dict, spec: str | None, stem: str, args) -> dict:
    """EDM's metrics of args.n molecules from a snapshot with sampler `spec` (None: the
    experiment's), cached in arch_dir/<stem>.json beside the samples (<stem>.sdf)."""
    from molgen.diffusion import SamplerConfig
    from molgen.train import load_trained

    cached = arch_dir / f"{stem}.json"
    if not cached.exists():
        trained = load_trained(arch_dir / snap["model"])
        sampler = trained.sampler if spec is None else SamplerConfig.from_spec(spec, trained.sampler)
        cpu0 = time.process_time()
        metrics = trained.task.evaluate(trained.denoiser, sampler, args.n, seed=args.seed,
                                        progress=True, path=cached.with_suffix(".sdf"))
        write_json(cached, {**metrics, "sampling_cpu_seconds": time.process_time() - cpu0,
                            "sampler": sampler.to_dict(), "spec": spec or "default"})
    return json.loads(cached.read_text())


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("atom_stability", "atom stability"), ("molecule_stability", "molecule stability"),
            ("validity", "validity (RDKit)")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4))
    for ax, (key, title) in zip(axes, keys):
        for arch, entry in results["architectures"].items():
            rows = entry["snapshots"]
            ax.plot([r["cpu_seconds"] / 60 for r in rows], [100 * r[key] for r in rows],
                    marker="o", label=arch)
        ax.set(title=title, xlabel="training CPU-minutes (one thread)", ylabel="%", ylim=(0, 100))
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"QM9, experiment=qm9 recipe, {results['n']} samples per point")
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
    p.add_argument("--sampler", default=None,
                   help="also sample the snapshots --at with this sampler (kind:steps[:setting=value...])")
    p.add_argument("--at", type=float, nargs="*", default=[], help="CPU-minutes of those snapshots")
    p.set_defaults(func=cmd_evaluate)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
