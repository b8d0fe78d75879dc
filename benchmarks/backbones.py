"""Protein backbone generation against the PDownB test chains: Cα geometry, shape, secondary
structure, handedness, diversity and novelty, per chain length, beside a ceiling and a floor.

Rows, at each length L (--lengths), --n chains each:
  test chains    windows of L residues from the test split's contiguous segments (the
                 ceiling: what natural chains look like; fewer than --n where few are long)
  random walk    self-avoiding random walks with 3.8 Å steps (the floor)
  <sampler>:<NFE> the model (--checkpoint) with that core sampler and step count
Metrics (molgen.metrics.backbones): fraction of virtual bonds within 3.8 ± 0.2 Å, of chains
without a Cα clash (< 3 Å), of right-handed helical dihedrals; Jensen–Shannon divergence
(bits) of the virtual angle τ and dihedral α histograms against all test segments; mean
radius of gyration beside the test segments' power-law fit at L; P-SEA helix / strand / coil
fractions and the fraction of chains with a strand; with tmtools installed, the mean pairwise
TM-score among the first --tm-samples chains (diversity) and their mean highest TM-score to
the training chains (novelty: 1 is a copy).

Secondary-structure guidance (a model trained with task.condition=sse): at --sse-length, for
each target "helix:strand" of --sse-targets and each scale w of --guidance, --n chains aimed
at it; reported: the P-SEA fractions they reach, their mean absolute error to the target,
and the geometry above.

Designability (ProteinMPNN + structure prediction) cannot run on this machine; it is not
measured here.  Model choices use the validation split (`--split valid`); the reported table
uses the test split.

    python benchmarks/backbones.py --checkpoint molgen/proteins/weights/default.pt \
        --lengths 50 100 150 200 --n 100 --samplers dpmpp_2m:50 ddpm:200
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from molgen.data.proteins import load_pdownb
from molgen.diffusion import SamplerConfig
from molgen.metrics import backbones as geometry
from molgen.proteins.api import BackboneModel

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "backbones.json"
BINS = {"tau": np.linspace(0, 180, 37), "alpha": np.linspace(-180, 180, 73)}
SSE_COLOURS = {"H": "tab:red", "E": "tab:blue", "C": "0.6"}


def windows(segments: list[np.ndarray], length: int, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to n windows of `length` residues, each from a different segment long enough."""
    long = [s for s in segments if len(s) >= length]
    picks = rng.permutation(len(long))[:n]
    out = []
    for i in picks:
        start = rng.integers(len(long[i]) - length + 1)
        out.append(long[i][start:start + length])
    return out


def random_walk(length: int, rng: np.random.Generator, step: float = geometry.BOND) -> np.ndarray:
    """A self-avoiding random walk: unit-length random steps, each redrawn (up to 100 times)
    while it lands within CLASH of an earlier, non-adjacent point."""
    trace = [np.zeros(3)]
    for _ in range(length - 1):
        for _ in range(100):
            direction = rng.normal(size=3)
            point = trace[-1] + step * direction / np.linalg.norm(direction)
            if len(trace) < 2 or np.linalg.norm(np.array(trace[:-1]) - point, axis=1).min() >= geometry.CLASH:
                break
        trace.append(point)
    return np.array(trace)


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence (bits) of two histograms."""
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a, b):
        keep = a > 0
        return float((a[keep] * np.log2(a[keep] / b[keep])).sum())

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def histograms(traces: list[np.ndarray]) -> dict[str, np.ndarray]:
    tau = np.concatenate([geometry.angles(t) for t in traces])
    alpha = np.concatenate([geometry.dihedrals(t) for t in traces])
    return {"tau": np.histogram(tau, BINS["tau"])[0] + 0.0, "alpha": np.histogram(alpha, BINS["alpha"])[0] + 0.0}


def tm_scores(traces: list[np.ndarray], references: list[np.ndarray] | None) -> dict:
    """Mean pairwise TM-score among traces, and (with references) each trace's highest
    TM-score to them, normalised by the trace's length; {} without tmtools."""
    try:
        from tmtools import tm_align
    except ImportError:
        return {}
    if not traces:
        return {}
    def tm(a, b):  # Cα traces carry no sequence: all glycine
        return tm_align(a, b, "G" * len(a), "G" * len(b)).tm_norm_chain1

    pairs = [tm(a, b) for i, a in enumerate(traces) for b in traces[i + 1:]]
    out = {"tm_pairwise": float(np.mean(pairs)) if pairs else None}
    if references is not None:
        out["tm_novelty"] = float(np.mean([max(tm(t, r) for r in references) for t in traces]))
    return out


def row_metrics(traces, reference_hist, rg_fit, length, references, tm_samples) -> dict:
    m = geometry.trace_metrics(traces)
    hist = histograms(traces)
    m.update({f"js_{k}": js_divergence(hist[k], reference_hist[k]) for k in hist})
    m["rg_test_fit"] = float(rg_fit[0] * length ** rg_fit[1])
    m.update(tm_scores(traces[:tm_samples], references))
    m["n"] = len(traces)
    return m


def draw(path: Path, rows: dict[str, list[np.ndarray]]) -> None:
    """Cα traces projected on their two principal axes, coloured by P-SEA (helix red, strand
    blue, coil grey): a line of panels per row, one panel per length."""
    per_row = max(len(traces) for traces in rows.values())
    fig = Figure(figsize=(3 * per_row, 3 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), per_row, squeeze=False)
    for r, (name, traces) in enumerate(rows.items()):
        for c in range(per_row):
            ax = axes[r, c]
            ax.set_axis_off()
            if c >= len(traces):
                continue
            trace = traces[c] - traces[c].mean(0)
            xy = trace @ np.linalg.svd(trace, full_matrices=False)[2][:2].T
            sse = geometry.secondary_structure(traces[c])
            for i in range(len(xy) - 1):
                ax.plot(xy[i:i + 2, 0], xy[i:i + 2, 1], color=SSE_COLOURS[sse[i]], lw=1.5)
            ax.set_aspect("equal")
            ax.set_title(f"{name}, L={len(trace)}" if c == 0 else f"L={len(trace)}", fontsize=9)
    fig.savefig(path, dpi=80)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="backbone model (default: the shipped one)")
    p.add_argument("--lengths", type=int, nargs="+", default=[50, 100, 150, 200])
    p.add_argument("--n", type=int, default=100, help="chains per row and length (default 100)")
    p.add_argument("--samplers", nargs="+", default=["dpmpp_2m:50"],
                   help="model rows as sampler:steps (default dpmpp_2m:50); none: references only")
    p.add_argument("--split", default="test", choices=("valid", "test"),
                   help="reference chains: valid for choices, test for the reported table")
    p.add_argument("--tm-samples", type=int, default=20,
                   help="chains per row whose TM-scores are computed (default 20)")
    p.add_argument("--sse-targets", nargs="*", default=["0.6:0.0", "0.1:0.4"],
                   help="helix:strand targets for the guidance sweep (none: no sweep)")
    p.add_argument("--guidance", type=float, nargs="+", default=[0.0, 1.0, 3.0],
                   help="guidance scales w of the sweep (default 0 1 3)")
    p.add_argument("--sse-length", type=int, default=100, help="chain length of the sweep")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON path (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start, rng = time.perf_counter(), np.random.default_rng(args.seed)
    reference = [s for c in load_pdownb(args.split) for s in c.segments(20)]
    training = [s for c in load_pdownb("train") for s in c.segments(20)]
    reference_hist = histograms(reference)
    rg = np.array([[len(s), geometry.radius_of_gyration(s)] for s in reference])
    slope, intercept = np.polyfit(np.log(rg[:, 0]), np.log(rg[:, 1]), 1)
    rg_fit = (float(np.exp(intercept)), float(slope))
    model = BackboneModel.load(args.checkpoint) if args.samplers != ["none"] else None

    results, seconds, pictures = {}, {}, {}
    for length in args.lengths:
        rows = {f"{args.split} chains": windows(reference, length, args.n, rng),
                "random walk": [random_walk(length, rng) for _ in range(args.n)]}
        for spec in ([] if model is None else args.samplers):
            kind, steps = spec.split(":")
            sampler = SamplerConfig.from_dict({**model.sampler.to_dict(), "kind": kind, "steps": int(steps)})
            t0 = time.perf_counter()
            with torch.no_grad():
                rows[spec] = model.task.sample(model.denoiser_for, sampler, torch.full((args.n,), length),
                                               seed=args.seed, progress=True)
            seconds[f"{spec}@{length}"] = time.perf_counter() - t0
        results[str(length)] = {name: row_metrics(traces, reference_hist, rg_fit, length,
                                                  training if name != f"{args.split} chains" else None,
                                                  args.tm_samples)
                                for name, traces in rows.items() if traces}
        for name, traces in rows.items():
            if traces:
                pictures.setdefault(name, []).append(traces[0])
        print(f"L={length}: " + "; ".join(
            f"{name}: bonds {m['bonds_ok']:.3f}, clash-free {m['clash_free']:.2f}, right-handed "
            f"{m['right_handed']:.3f}, H/E {m['helix']:.2f}/{m['strand']:.2f}"
            for name, m in results[str(length)].items()))

    guided = {}
    if model is not None and model.task.cfg.condition and args.sse_targets:
        kind, steps = args.samplers[0].split(":")
        for target in args.sse_targets:
            helix, strand = map(float, target.split(":"))
            for w in args.guidance:
                sampler = SamplerConfig.from_dict({**model.sampler.to_dict(), "kind": kind,
                                                   "steps": int(steps), "guidance_scale": w})
                with torch.no_grad():
                    traces = model.task.sample(model.denoiser_for, sampler,
                                               torch.full((args.n,), args.sse_length), seed=args.seed,
                                               helix=helix, strand=strand, progress=True)
                m = geometry.trace_metrics(traces)
                reached = np.array([[sse.count("H"), sse.count("E")] for sse in
                                    map(geometry.secondary_structure, traces)]) / args.sse_length
                m["mae_to_target"] = float(np.abs(reached - [helix, strand]).mean())
                guided[f"{target} w={w:g}"] = m
                print(f"target helix {helix} strand {strand}, w={w:g}: reached {m['helix']:.2f} / "
                      f"{m['strand']:.2f} (MAE {m['mae_to_target']:.3f}), bonds {m['bonds_ok']:.3f}")

    output = dict(
        description="Cα-trace backbones against PDownB chains (benchmarks/backbones.py)",
        settings=dict(checkpoint=args.checkpoint, lengths=args.lengths, n=args.n,
                      samplers=args.samplers, split=args.split, tm_samples=args.tm_samples,
                      seed=args.seed, threads=args.threads, rg_test_fit=rg_fit,
                      sse_targets=args.sse_targets, guidance=args.guidance, sse_length=args.sse_length),
        machine=dict(platform=platform.platform(), python=sys.version.split()[0],
                     cpu_count=os.cpu_count(), torch=torch.__version__),
        results=results, guidance_sweep=guided, sampling_seconds=seconds,
        total_runtime_s=time.perf_counter() - start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=1) + "\n")
    draw(args.out.with_suffix(".png"), pictures)
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
