"""Sampler accuracy vs cost with the *exact* model of a known distribution.

With ExactEpsModel (the closed-form ε* of a Gaussian mixture) there is no learning error, so
every deviation of the samples from the true mixture is sampling error: discretisation of the
sampler plus Monte-Carlo noise of the finite sample.  For each sampler and number of function
evaluations (NFE) we draw N points from the same seeded x_T and measure

* sliced Wasserstein-1 distance to an independent fresh sample of the true mixture (size N),
* unbiased squared MMD (molgen.metrics.stats.mmd_rbf) on the first `--mmd-n` points of both,
* component-weight error: max_k |share of samples whose most responsible component is k - π_k|,
* wall time of the sampling call,

with the NFE counted by a wrapper around the denoiser.  A "noise floor" row gives the same
numbers for independent true samples (mean over --floor-draws draws): what a perfect sampler
would score, i.e. where sampling error becomes invisible.

With --grids the time grid is a dimension too: every sampler × grid × NFE, where a grid is
one of GRIDS ('trailing'; 'logsnr' uniform in log SNR down to t_min = 1e-3; 'karras', ρ = 7
from σ/α at t = 1 down to σ/α at t_min = 1e-3; both also from σ/α = 80, '_80'), with a summary of the best grid per NFE and of
the published order (DPM-Solver++ 10 NFE vs DDIM 20 vs DDPM 1000).

    python benchmarks/core_samplers.py            # defaults: N = 10000, linear schedule, T = 1000
    python benchmarks/core_samplers.py --n 2000 --schedule cosine --out /tmp/cs.json
    python benchmarks/core_samplers.py --threads 1 --grids trailing logsnr karras \
        --out benchmarks/results/core_samplers_grids.json

With --checkpoint the same table is drawn from a *trained* model instead (a toy2d checkpoint of
`molgen train task=toy2d`, on its own mixture and schedule), and the JSON records that model's
error against the exact one, E||eps_hat - eps*||^2 per time: how far learning error, rather
than the sampler, decides the order of the samplers (the question issue 19 asks of MNIST).

    molgen train task=toy2d steps=4000 out_dir=runs/toy/s4000
    python benchmarks/core_samplers.py --checkpoint runs/toy/s4000/checkpoint.pt --grids trailing logsnr \
        --nfe 10 20 1000 --out /tmp/cs_trained.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from molgen.diffusion import CountingDenoiser, Denoiser, SamplerConfig, make_schedule, sample
from molgen.diffusion.samplers import LOWER_ORDER_BELOW
from molgen.diffusion.schedules import SCHEDULES, SPACINGS
from molgen.metrics.stats import mmd_rbf, sliced_wasserstein
from molgen.diffusion.spaces import EUCLIDEAN
from molgen.data.toy import ExactEpsModel, mixture_2d
from molgen.train import load_trained

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "core_samplers.json"
DEFAULT_NFES = (5, 10, 20, 50, 100, 1000)

# (label, SamplerConfig fields).  NFE -> steps mapping is in `steps_for`.
SAMPLERS = [
    ("DDPM (posterior var.)", dict(kind="ddpm", options={"variance": "posterior"})),
    ("DDIM eta=0", dict(kind="ddim", options={"eta": 0.0})),
    ("PF-ODE Euler", dict(kind="euler")),
    ("PF-ODE Heun", dict(kind="heun")),
    ("Reverse SDE Euler-Maruyama", dict(kind="sde", options={"corrector_steps": 0})),
    ("DPM-Solver++(2M)", dict(kind="dpmpp_2m")),
    ("DPM-Solver++(2M) low.ord.final", dict(kind="dpmpp_2m", options={"lower_order_final": True})),
    ("DPM-Solver++(3M)", dict(kind="dpmpp_3m")),
    ("DPM-Solver++(3M) low.ord.final", dict(kind="dpmpp_3m", options={"lower_order_final": True})),
    ("DPM-Solver++(2M) SDE", dict(kind="dpmpp_2m_sde", options={"eta": 1.0})),
]

# name -> the SamplerConfig grid fields of --grids
GRIDS = {
    "trailing": dict(spacing="trailing"),
    "leading": dict(spacing="leading"),
    "linspace": dict(spacing="linspace"),
    "logsnr_points": dict(spacing="logsnr"),  # the grid points nearest to uniform log SNR
    "logsnr": dict(spacing="logsnr", t_min=1e-3),
    "karras": dict(spacing="karras", t_min=1e-3),
    # the same from σ/α = 80 (EDM's σ_max) instead of t = 1: the cosine schedule's σ/α(1) is 2e4
    "logsnr_80": dict(spacing="logsnr", t_min=1e-3, sigma_max=80.0),
    "karras_80": dict(spacing="karras", t_min=1e-3, sigma_max=80.0),
}
PUBLISHED = [("DPM-Solver++(2M)", 10), ("DPM-Solver++(3M)", 10), ("DDIM eta=0", 20),
             ("DDPM (posterior var.)", 1000)]
"""The published order (Lu et al. 2022, CIFAR-10 FID): DPM-Solver++ at 10 NFE (2.91) beats
DDIM at 20 (6.84) and even DDPM at 1000 (3.17)."""


def steps_for(kind: str, nfe: int) -> tuple[int, int]:
    """(steps, expected NFE) for a nominal NFE budget.  Heun takes 2·steps - 1 NFE."""
    if kind == "heun":
        steps = (nfe + 1) // 2
        return steps, 2 * steps - 1
    return nfe, nfe


def weight_error(mixture, x: torch.Tensor) -> float:
    """max_k |fraction of x assigned (argmax responsibility) to component k - π_k|."""
    finite = torch.isfinite(x).all(1)
    if not bool(finite.all()):
        return float("nan")
    labels = mixture.responsibilities(x).argmax(1)
    hist = torch.bincount(labels, minlength=len(mixture.weights)).double() / len(x)
    return float((hist - mixture.weights).abs().max())


def measure(x: torch.Tensor, ref: torch.Tensor, mixture, args, seed: int) -> dict:
    n_bad = int((~torch.isfinite(x).all(1)).sum())
    if n_bad:
        return dict(sw=float("nan"), mmd=float("nan"), weight_err=float("nan"), nonfinite=n_bad)
    gen = torch.Generator().manual_seed(seed + 3)  # same projections for every row
    return dict(
        sw=sliced_wasserstein(x, ref, projections=args.projections, generator=gen),
        mmd=mmd_rbf(x[: args.mmd_n], ref[: args.mmd_n]),
        weight_err=weight_error(mixture, x),
        nonfinite=0,
    )


def run_one(denoiser, x_T, config: SamplerConfig, seed: int) -> tuple[torch.Tensor, int, float]:
    counting = CountingDenoiser(denoiser)
    gen = torch.Generator().manual_seed(seed + 2)  # sampler noise (DDPM, SDE)
    t0 = time.perf_counter()
    x = sample(counting, x_T.clone(), config, generator=gen)
    return x, counting.nfe, time.perf_counter() - t0


def run_seeds(denoiser, mixture, cfg: SamplerConfig, seeds, args) -> dict:
    """Mean metrics, NFE (largest) and time per run of one sampler setting over the seeds."""
    per_seed = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        x_T = torch.randn(args.n, mixture.dim, generator=gen, dtype=torch.float64)
        ref = mixture.sample(args.n, generator=torch.Generator().manual_seed(seed + 1))
        x, nfe, dt = run_one(denoiser, x_T, cfg, seed)
        per_seed.append(dict(seed=seed, nfe=nfe, time_s=dt, **measure(x, ref, mixture, args, seed)))
    mean = {k: sum(r[k] for r in per_seed) / len(per_seed) for k in ("sw", "mmd", "weight_err", "time_s")}
    return dict(nfe=max(r["nfe"] for r in per_seed), nonfinite=sum(r["nonfinite"] for r in per_seed),
                per_seed=per_seed, **mean)


MODEL_ERROR_TIMES = (1e-3, 0.01, 0.05, 0.1, 0.2, 0.5, 0.8, 1.0)


@torch.no_grad()
def model_error(denoiser, exact, mixture, n: int, seed: int) -> dict:
    """E||eps_hat(x_t, t) - eps*(x_t, t)||^2 of a trained denoiser against the exact one, at
    MODEL_ERROR_TIMES, on n points x_t = alpha x_0 + sigma z of the mixture; also the same
    error carried into x_0-space (sigma/alpha)^2 E||.||^2, which is what a sampler's last
    steps inherit."""
    gen = torch.Generator().manual_seed(seed + 4)
    x0 = mixture.sample(n, generator=gen)
    mse, mse_x0 = [], []
    for t in MODEL_ERROR_TIMES:
        tt = torch.full((n,), t, dtype=torch.float64)
        alpha, sigma = exact.scales(tt, x0)
        xt = alpha * x0 + sigma * torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        err = float(((denoiser(xt, tt)[1] - exact(xt, tt)[1]) ** 2).sum(1).mean())
        mse.append(err)
        mse_x0.append(err * float((sigma / alpha).flatten()[0]) ** 2)
    return dict(t=list(MODEL_ERROR_TIMES), mse=mse, mse_x0=mse_x0, n=n)


def fmt(v: float, width: int = 10) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "nan".rjust(width)
    return f"{v:.3e}".rjust(width) if abs(v) < 1e-2 or abs(v) >= 1e3 else f"{v:.4f}".rjust(width)


def print_table(title: str, key: str, rows: list[dict], nfes, extra: list[dict], floor: dict | None):
    lw = 32
    print(f"\n{title}")
    print("sampler".ljust(lw) + "".join(f"NFE={n}".rjust(12) for n in nfes))
    for label in dict.fromkeys(r["sampler"] for r in rows):
        line = label.ljust(lw)
        for n in nfes:
            r = next((r for r in rows if r["sampler"] == label and r["nominal_nfe"] == n), None)
            if r is None:
                line += "-".rjust(12)
                continue
            cell = fmt(r[key], 10)
            line += (cell + ("*" if r["nfe"] != n else " ")).rjust(12)
        print(line)
    for r in extra:
        print(f"{r['sampler']} (NFE={r['nfe']})".ljust(lw) + fmt(r[key], 10).rjust(12))
    if floor is not None and key in floor:
        print("noise floor (true vs true)".ljust(lw) + fmt(floor[key], 10).rjust(12)
              + f"  (mean of {len(floor['draws'])} draws, sd {fmt(floor[key + '_sd'], 0)},"
              f" max {fmt(floor[key + '_max'], 0)})")


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def summarize(rows: list[dict], grids: list[str], nfes) -> dict:
    """Which grid is best, per sampler and NFE and over all samplers per NFE (by SW and by
    MMD, means over the seeds), and the rows of the published order."""
    def best(candidates, key):
        ok = [r for r in candidates if _finite(r[key])]
        return min(ok, key=lambda r: r[key]) if ok else None

    per_sampler, per_nfe = {}, {}
    for n in nfes:
        at_n = [r for r in rows if r["nominal_nfe"] == n]
        entry = {}
        for key in ("sw", "mmd"):
            b = best(at_n, key)
            wins = {g: 0 for g in grids}
            for label in dict.fromkeys(r["sampler"] for r in at_n):
                w = best([r for r in at_n if r["sampler"] == label], key)
                if w is not None:
                    wins[w["grid"]] += 1
                    per_sampler.setdefault(label, {}).setdefault(str(n), {})[key] = {
                        "best_grid": w["grid"], **{r["grid"]: r[key] for r in at_n if r["sampler"] == label}}
            entry[key] = dict(best_sampler=b["sampler"] if b else None, best_grid=b["grid"] if b else None,
                              value=b[key] if b else None, grid_wins_over_samplers=wins)
        per_nfe[str(n)] = entry
    published = {}
    for label, n in PUBLISHED:
        cands = [r for r in rows if r["sampler"] == label and r["nominal_nfe"] == n]
        if cands:
            published[f"{label} @ {n}"] = {
                "per_grid": {r["grid"]: dict(sw=r["sw"], mmd=r["mmd"]) for r in cands},
                "best_sw": min((r["sw"], r["grid"]) for r in cands if _finite(r["sw"])),
                "best_mmd": min((r["mmd"], r["grid"]) for r in cands if _finite(r["mmd"]))}
    return dict(per_nfe=per_nfe, per_sampler=per_sampler, published_order=published)


def print_summary(summary: dict):
    print("\nBest grid per NFE (lowest mean SW / MMD over all samplers; grid wins = samplers for which it is best)")
    for n, entry in summary["per_nfe"].items():
        for key, e in entry.items():
            wins = ", ".join(f"{g} {c}" for g, c in e["grid_wins_over_samplers"].items())
            print(f"  NFE={n:>5s} {key:3s}: {e['best_sampler']} on {e['best_grid']} ({fmt(e['value'], 0)}); wins: {wins}")
    print("\nPublished order (DPM-Solver++ 10 < DDIM 20 < DDPM 1000 in FID), on the mixture:")
    for name, e in summary["published_order"].items():
        per = ", ".join(f"{g} {fmt(v['sw'], 0)}/{fmt(v['mmd'], 0)}" for g, v in e["per_grid"].items())
        print(f"  {name:34s} best SW {fmt(e['best_sw'][0], 0)} ({e['best_sw'][1]}), "
              f"best MMD {fmt(e['best_mmd'][0], 0)} ({e['best_mmd'][1]});  SW/MMD per grid: {per}")


def plot_grids(results: dict, path: Path):
    """One panel per sampler (SW above, MMD below), one colour per grid, the floor dashed;
    a sampler's lower_order_final variant is drawn dotted in its panel."""
    plt = _pyplot()
    rows, floor, lof = results["grid"], results["noise_floor"], " low.ord.final"
    labels = [label for label in dict.fromkeys(r["sampler"] for r in rows) if not label.endswith(lof)]
    grids = list(results["settings"]["grids"])
    fig, axes = plt.subplots(2, len(labels), figsize=(3.1 * len(labels), 6.4), sharex=True,
                             sharey="row", squeeze=False)
    for col, label in enumerate(labels):
        for row_i, key in enumerate(("sw", "mmd")):
            ax = axes[row_i, col]
            for g, mk, colour in zip(grids, "osD^vP", ("C0", "C1", "C2", "C3", "C4", "C5")):
                for variant, ls in ((label, "-"), (label + lof, ":")):
                    pts = sorted((r["nfe"], r[key]) for r in rows if r["sampler"] == variant
                                 and r["grid"] == g and _finite(r[key]) and r[key] > 0)
                    if pts:
                        ax.plot(*zip(*pts), marker=mk, ls=ls, color=colour, ms=4, mfc="none",
                                label=g + (" lower_order_final" if ls == ":" else ""))
            if floor[key] > 0:
                ax.axhline(floor[key], color="gray", ls="--", lw=1)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            if row_i == 0:
                ax.set_title(label, fontsize=9)
                ax.set_ylim(0.01, 1.0)  # unstable few-step rows (Heun on log-SNR grids) off the top
                if any(r["sampler"] == label + lof for r in rows):
                    ax.legend(fontsize=6)
            else:
                ax.set_xlabel("NFE")
    axes[0, 0].set_ylabel("sliced W1 (floor dashed)")
    axes[1, 0].set_ylabel("MMD² (≤ 0 not drawn)")
    axes[0, 0].legend(fontsize=7)
    s = results["settings"]
    _save(plt, fig, results, f"mean of {len(s['seeds']['per_row'])} draws: sampler × grid", path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, results: dict, what: str, path: Path):
    s = results["settings"]
    m = results["model"]
    name = "Exact model" if m["kind"] == "exact" else f"Trained model (step {m['step']}, {m['prediction']})"
    fig.suptitle(f"{name}, mixture_2d('{s['mixture']}'), {s['schedule']} schedule T={s['T']}, "
                 f"N={s['n']}, {what}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot(results: dict, path: Path):
    plt = _pyplot()
    metrics = [("sw", "sliced Wasserstein-1"), ("mmd", "MMD² (RBF; values ≤ 0 not drawn)"),
               ("weight_err", "component-weight error (max abs)")]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    rows, floor = results["grid"], results["noise_floor"]
    for ax, (key, name) in zip(axes, metrics):
        # distinct markers and line styles: coinciding samplers (e.g. Euler = DDIM) stay visible
        labels = dict.fromkeys(r["sampler"] for r in rows)
        for label, mk, ls in zip(labels, "osD^vPXdh*", ("-", "--", ":", "-", "-", "-.") * 2):
            pts = sorted((r["nfe"], r[key]) for r in rows if r["sampler"] == label
                         and r[key] is not None and math.isfinite(r[key]) and r[key] > 0)
            if pts:
                ax.plot(*zip(*pts), marker=mk, ls=ls, ms=5, mfc="none", label=label)
        for r, m in zip(results["rk45"], ("*", "P")):
            if r[key] is not None and math.isfinite(r[key]) and r[key] > 0:
                ax.plot([r["nfe"]], [r[key]], m, ms=12, color="k", label=r["sampler"])
        if floor[key] > 0:
            ax.axhline(floor[key], color="gray", ls="--", label="noise floor (true vs true, mean)")
            if floor[key + "_max"] > floor[key]:
                ax.axhspan(max(floor[key] - floor[key + "_sd"], floor[key] / 10),
                           floor[key] + floor[key + "_sd"], color="gray", alpha=0.15)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("NFE (measured)")
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    _save(plt, fig, results, f"{results['settings']['spacing']} spacing", path)


def provenance() -> dict:
    """Which molgen code produced the numbers (the samplers are still being edited)."""
    import hashlib
    import subprocess

    root = HERE.parent
    info = {}
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True, text=True,
                                        timeout=10).stdout.rstrip()
        info["git_head"] = run("rev-parse", "HEAD")
        info["git_dirty_paths_molgen"] = run("status", "--porcelain", "molgen").splitlines()
    except (OSError, subprocess.SubprocessError):
        pass
    for rel in ("molgen/diffusion/samplers.py", "molgen/diffusion/ode.py", "molgen/data/toy.py",
                "molgen/diffusion/schedules.py", "molgen/metrics/stats.py"):
        f = root / rel
        if f.exists():
            info[f"sha256:{rel}"] = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000, help="samples per run (default 10000)")
    p.add_argument("--schedule", default="linear", choices=sorted(SCHEDULES))
    p.add_argument("--T", type=int, default=1000, help="grid size of the schedule (default 1000)")
    p.add_argument("--spacing", default="trailing", choices=SPACINGS,
                   help="the one grid of a run without --grids (default trailing)")
    p.add_argument("--grids", nargs="+", default=None, choices=sorted(GRIDS),
                   help="run every sampler on each of these grids (see GRIDS)")
    p.add_argument("--samplers", nargs="+", default=None, metavar="LABEL|KIND",
                   help="only these samplers (labels of SAMPLERS or kinds; default all)")
    p.add_argument("--mixture", default="ring", choices=("ring", "three"))
    p.add_argument("--nfe", type=int, nargs="+", default=list(DEFAULT_NFES))
    p.add_argument("--rk45-tol", type=float, nargs="*", default=[1e-5, 1e-3],
                   help="rtol = atol values for the adaptive RK45 rows")
    p.add_argument("--mmd-n", type=int, default=2000, help="subset size for MMD (default 2000)")
    p.add_argument("--projections", type=int, default=256, help="sliced-Wasserstein directions")
    p.add_argument("--floor-draws", type=int, default=20,
                   help="independent true samples averaged for the noise-floor row")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--seeds", type=int, default=3, help="draws of x_T averaged per row (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="JSON path; the plot goes next to it with suffix .png")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="a toy2d model of `molgen train task=toy2d` in place of the exact model "
                        "(its mixture and schedule replace --mixture, --schedule and --T)")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    code = provenance()  # taken before molgen runs, in case files change during the run
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.checkpoint is None:
        schedule, mixture, trained = make_schedule(args.schedule, T=args.T), mixture_2d(args.mixture), None
    else:  # the trained model's own mixture and schedule
        try:
            trained = load_trained(args.checkpoint, task="toy2d")
        except (OSError, ValueError) as exc:
            p.error(f"--checkpoint: {exc}")
        schedule, mixture = trained.schedule, trained.task.mixture
        args.schedule, args.T, args.mixture = trained.cfg.diffusion.schedule, schedule.T, trained.task.cfg.mixture
    exact = Denoiser(ExactEpsModel(mixture, schedule), schedule, prediction="eps")
    if trained is None:
        denoiser, model = exact, dict(kind="exact", error=None)
    else:
        denoiser = trained.denoiser(EUCLIDEAN)
        model = dict(kind="trained", checkpoint=str(args.checkpoint), step=trained.step,
                     prediction=trained.cfg.diffusion.prediction,
                     error=model_error(denoiser, exact, mixture, args.n, args.seed))
        print("model error E|eps_hat - eps*|^2 at t: "
              + ", ".join(f"{t:g}: {e:.2e}" for t, e in zip(model["error"]["t"], model["error"]["mse"])))

    ref = mixture.sample(args.n, generator=torch.Generator().manual_seed(args.seed + 1))
    # noise floor: a perfect sampler's numbers, from independent true samples of size N
    draws = [measure(mixture.sample(args.n, generator=torch.Generator().manual_seed(args.seed + 100 + r)),
                     ref, mixture, args, args.seed) for r in range(args.floor_draws)]
    floor = {"sampler": "noise floor (true vs true)", "draws": draws}
    for key in ("sw", "mmd", "weight_err"):
        v = torch.tensor([d[key] for d in draws], dtype=torch.float64)
        floor[key] = float(v.mean())
        floor[key + "_sd"] = float(v.std()) if len(v) > 1 else 0.0
        floor[key + "_max"] = float(v.max())
    denoiser(ref[:16], 0.5)  # warm-up before timing

    # One draw of x_T can be unbalanced enough to bias a deterministic sampler's component
    # weights by more than the sampler's own error: every row is averaged over --seeds draws
    # (x_T, reference sample and sampler noise all change with the seed).
    seeds = [args.seed + 1000 * k for k in range(args.seeds)]
    grids = ([(name, GRIDS[name]) for name in args.grids] if args.grids
             else [(args.spacing, dict(spacing=args.spacing))])
    samplers = [(label, opts) for label, opts in SAMPLERS
                if args.samplers is None or label in args.samplers or opts["kind"] in args.samplers]
    rows = []
    for grid_name, grid_fields in grids:
        for label, opts in samplers:
            for n in args.nfe:
                steps, expected = steps_for(opts["kind"], n)
                if not 1 <= steps <= schedule.T:
                    print(f"skip {label} NFE={n}: needs {steps} steps on a T={schedule.T} grid")
                    continue
                if opts.get("options", {}).get("lower_order_final") and steps >= LOWER_ORDER_BELOW:
                    continue  # the same steps as without lower_order_final
                cfg = SamplerConfig(steps=steps, **grid_fields, **opts)
                row = dict(sampler=label, grid=grid_name, config=cfg.to_dict(), nominal_nfe=n,
                           steps=steps, expected_nfe=expected,
                           **run_seeds(denoiser, mixture, cfg, seeds, args))
                if row["nfe"] != expected:
                    print(f"WARNING {label}: expected {expected} NFE for steps={steps}, counted {row['nfe']}")
                rows.append(row)
                print(f"{label:32s} {grid_name:9s} NFE={row['nfe']:5d}  SW={row['sw']:.4f}  "
                      f"MMD={row['mmd']:.2e}  w_err={row['weight_err']:.4f}  {row['time_s']:7.2f}s", flush=True)

    rk45_rows = []
    for tol in args.rk45_tol:  # uses only the grid's ends: t = 1 and 1/T
        cfg = SamplerConfig(kind="rk45", steps=schedule.T, spacing=args.spacing,
                            options={"rtol": tol, "atol": tol})
        row = dict(sampler=f"RK45 tol={tol:g}", config=cfg.to_dict(), nominal_nfe=None,
                   steps=cfg.steps, expected_nfe=None, **run_seeds(denoiser, mixture, cfg, seeds, args))
        rk45_rows.append(row)
        print(f"{row['sampler']:32s} NFE={row['nfe']:5d}  SW={row['sw']:.4f}  MMD={row['mmd']:.2e}  "
              f"w_err={row['weight_err']:.4f}  {row['time_s']:7.2f}s", flush=True)

    nfes = list(args.nfe)
    print("\n(* = measured NFE differs from the column: Heun uses 2*steps-1 NFE, steps=(NFE+1)//2)")
    tables = [("Sliced Wasserstein-1 to a fresh true sample (lower is better)", "sw"),
              ("MMD^2 (RBF, unbiased, first %d points)" % args.mmd_n, "mmd"),
              ("Component-weight error (max |hist - pi|)", "weight_err"),
              ("Wall time of sampling [s]", "time_s")]
    for grid_name, _ in grids:
        for title, key in tables:
            print_table(f"{title}, {grid_name} grid", key, [r for r in rows if r["grid"] == grid_name],
                        nfes, rk45_rows, None if key == "time_s" else floor)
    summary = summarize(rows, [g for g, _ in grids], nfes) if args.grids else None
    if summary:
        print_summary(summary)

    total = time.perf_counter() - t_start
    results = dict(
        description="Sampler error vs NFE with the exact eps-model of a 2-D Gaussian mixture "
                    "(benchmarks/core_samplers.py)",
        settings=dict(n=args.n, schedule=args.schedule, T=schedule.T, spacing=args.spacing,
                      grids={name: fields for name, fields in grids},
                      mixture=args.mixture, prediction="eps", dtype="float64", nfe=nfes,
                      rk45_tol=args.rk45_tol, mmd_n=args.mmd_n,
                      mmd_bandwidths=[0.1, 0.2, 0.5, 1.0, 2.0], sw_projections=args.projections,
                      seeds=dict(per_row=[args.seed + 1000 * k for k in range(args.seeds)],
                                 x_T="seed", reference="seed + 1", sampler_noise="seed + 2",
                                 sw_directions="seed + 3",
                                 noise_floor_samples=f"{args.seed + 100}..{args.seed + 99 + args.floor_draws}"),
                      floor_draws=args.floor_draws,
                      heun_steps="steps = (NFE + 1) // 2, true NFE = 2 * steps - 1",
                      rk45_steps="steps = T, so the ODE is solved to t = 1/T, then one denoising step"),
        machine=dict(platform=platform.platform(), python=sys.version.split()[0],
                     torch=torch.__version__, torch_threads=torch.get_num_threads(),
                     torch_interop_threads=torch.get_num_interop_threads(),
                     cpu_count=os.cpu_count(), processor=platform.processor(),
                     loadavg_1_5_15min_start=list(load_start), loadavg_1_5_15min_end=list(os.getloadavg())),
        code=code, model=model,
        noise_floor=floor, grid=rows, rk45=rk45_rows, summary=summary, total_runtime_s=total,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
    print(f"\nwrote {args.out}")
    if not args.no_plot:
        png = args.out.with_suffix(".png")
        (plot_grids if args.grids else plot)(results, png)
        print(f"wrote {png}")
    print(f"total runtime {time.perf_counter() - t_start:.1f}s")


if __name__ == "__main__":
    main()
