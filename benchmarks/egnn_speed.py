"""EGNN speed side by side with EDM's reference EGNN (issue 19, item 5).

EDM's denoiser is `EGNN_dynamics_QM9` of egnn/models.py on `egnn/egnn_new.py` of the public
repository ehoogeboom/e3_diffusion_for_molecules, imported at run time from a copy kept
outside this repository (--edm-repo: a checkout, or a bare git copy whose egnn/ and
equivariant_diffusion/ files are extracted to a temporary folder); none of its code is in
ours.  It runs with its QM9 settings (README and main_qm9.py defaults: 9 layers × 256, one
invariant sublayer, attention, tanh, norm_constant 1, normalization_factor 1, sum) on EDM's
padded batches: every molecule padded to the batch's largest, n_max² edges per molecule
with EDM's node and edge masks (no self-loops), behind molgen's network call.

The denoisers, timed alternately (the order rotates every round) on the same batches of
real QM9 training molecules, one CPU thread, float32, no gradients:

  molgen             molgen.nn.egnn.EGNN as experiment=qm9 builds it (the coordinate MLP
                     reads the message m_ij: 256 → 256 → 1)
  molgen_edm_shapes  the same layer with coords_from="nodes": EDM's MLP shapes (coordinate
                     MLP on [h_i, h_j, d², d²₀] through two 256-wide layers), checked against
                     EDM's EquivariantBlock with copied weights ("equivalence")
  edm                EDM's EGNN_dynamics_QM9
  molgen_compiled    with --compile: molgen's network (the same weights) through
                     torch.compile (inductor, default settings); its warm-up call, which
                     compiles it for the batch's shapes, is timed apart ("warmup_seconds")

Timed: one denoiser call (medians over --calls rounds) and a full sample with the QM9
experiment's sampler (DPM-Solver++(2M), 50 steps, 50 NFE, counted), medians over
--sample-rounds; ratios are molgen's throughput over EDM's, of wall-clock and of CPU
seconds (one thread: the CPU seconds are the work done, less disturbed than wall time by
other processes).  Denormal floats are flushed to zero (see main).  Machine load
(os.getloadavg) is recorded before and after each part: the CPU is shared.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/egnn_speed.py --edm-repo PATH
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from device_step import write_json

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "egnn_speed.json"
MODELS = ("molgen", "molgen_edm_shapes", "edm")
GOALS = {"molgen": 6.0, "molgen_edm_shapes": 4.0}
"""Issue 19: sampling throughput at equal NFE over EDM's, for each of our configurations."""
EDM_SETTINGS = {"n_layers": 9, "hidden_nf": 256, "inv_sublayers": 1, "attention": True, "tanh": True,
                "norm_constant": 1, "sin_embedding": False, "normalization_factor": 1,
                "aggregation_method": "sum", "mode": "egnn_dynamics", "condition_time": True}
EDM_FILES = ["egnn", "equivariant_diffusion/__init__.py", "equivariant_diffusion/utils.py"]


# --------------------------------------------------------------------------- EDM's code

def _git(path: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", f"--git-dir={path}", *args], capture_output=True, check=True)


def import_edm(path: str, scratch: str) -> tuple[object, object, str | None]:
    """EDM's (egnn.models, egnn.egnn_new) modules and its commit, from a checkout at `path`
    or from a bare git copy, whose files go to `scratch`."""
    path, commit = Path(path).resolve(), None
    if (path / "egnn" / "egnn_new.py").is_file():
        root = path
        if (path / ".git").exists():
            commit = _git(path / ".git", "rev-parse", "HEAD").stdout.decode().strip()
    else:
        try:
            commit = _git(path, "rev-parse", "HEAD").stdout.decode().strip()
            archive = _git(path, "archive", "--format=tar", "HEAD", *EDM_FILES).stdout
        except (subprocess.CalledProcessError, FileNotFoundError) as err:
            raise SystemExit(f"--edm-repo {path}: neither a checkout of "
                             f"ehoogeboom/e3_diffusion_for_molecules nor a git copy of it ({err})")
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(scratch, filter="data")
        root = Path(scratch)
    sys.path.insert(0, str(root))
    from egnn import egnn_new, models  # noqa: E402  (EDM's code, found on the path above)

    return models, egnn_new, commit


class EDMNet(torch.nn.Module):
    """EDM's EGNN_dynamics_QM9 behind molgen's network call net(x, t, cond=None, *, space):
    the packed state [N, 3 + F] is padded to EDM's [B, n_max, 3 + F] with its node mask and
    edge mask (both atoms real, no self-loops), and EDM's output is unpadded again."""

    def __init__(self, dynamics):
        super().__init__()
        self.dynamics = dynamics

    def forward(self, x, t, cond=None, *, space):
        index, num = space.index(x), space.batch_size(x)
        sizes = torch.bincount(index, minlength=num)
        order = torch.argsort(index, stable=True)
        rank = torch.empty_like(index)
        rank[order] = torch.arange(len(index)) - (torch.cumsum(sizes, 0) - sizes)[index[order]]
        n_max = int(sizes.max())
        xh = x.new_zeros(num, n_max, x.shape[1])
        xh[index, rank] = x
        node_mask = x.new_zeros(num, n_max, 1)
        node_mask[index, rank] = 1
        edge_mask = node_mask * node_mask.transpose(1, 2) * (1 - torch.eye(n_max, dtype=x.dtype))
        out = self.dynamics._forward(t, xh, node_mask, edge_mask.reshape(-1, 1), None)
        return out[index, rank]


def edm_network(models, num_features: int) -> EDMNet:
    settings = {k: v for k, v in EDM_SETTINGS.items() if k != "condition_time"}
    return EDMNet(models.EGNN_dynamics_QM9(in_node_nf=num_features + 1, context_node_nf=0, n_dims=3,
                                           device="cpu", act_fn=torch.nn.SiLU(), **settings))


# --------------------------------------------------------------------------- the check

def check_edm_shapes(egnn_new, space, pos, seed: int) -> dict:
    """EDM's EquivariantBlock and molgen's layer with coords_from="nodes", the block's weights
    copied into the layer (random, unit-scale, so that the coordinate step is not ~0): their
    largest output differences on a real QM9 batch, float64."""
    from molgen.nn.egnn import EquivariantConv
    from molgen.nn.graphs import fully_connected_edges

    hidden, coords_range = EDM_SETTINGS["hidden_nf"], 15.0
    block = egnn_new.EquivariantBlock(hidden, edge_feat_nf=2, act_fn=torch.nn.SiLU(), n_layers=1,
                                      attention=True, tanh=True, coords_range=coords_range,
                                      norm_constant=1, normalization_factor=1,
                                      aggregation_method="sum").double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) / p.shape[-1] ** 0.5)
    conv = EquivariantConv(hidden, 1, coords_range, coords_from="nodes").double()
    names = {"edge_mlp.0.0": "gcl_0.edge_mlp.0", "edge_mlp.0.2": "gcl_0.edge_mlp.2",
             "gate.0": "gcl_0.att_mlp.0", "node_mlp.0": "gcl_0.node_mlp.0",
             "node_mlp.2": "gcl_0.node_mlp.2", "coord_mlp.0": "gcl_equiv.coord_mlp.0",
             "coord_mlp.2": "gcl_equiv.coord_mlp.2", "coord_mlp.4": "gcl_equiv.coord_mlp.4"}
    edm_state = block.state_dict()
    conv.load_state_dict({k: edm_state[names[k.rsplit(".", 1)[0]] + "." + k.rsplit(".", 1)[1]]
                          for k in conv.state_dict()})
    index, num = space.batch, space.num_graphs
    h = torch.randn(len(index), hidden, generator=g, dtype=torch.float64)
    pos = pos.double()
    edges = fully_connected_edges(index, num)
    d2 = (pos[edges[0]] - pos[edges[1]]).square().sum(-1, keepdim=True)
    with torch.no_grad():
        h_ours, x_ours = conv(h, pos, edges, d2)
        # EDM's layout: padded molecules, edges (row i, col j) over all n_max² pairs, masked
        sizes = torch.bincount(index, minlength=num)
        n_max = int(sizes.max())
        rank = torch.arange(len(index)) - (torch.cumsum(sizes, 0) - sizes)[index]
        slot = index * n_max + rank
        hp = h.new_zeros(num * n_max, hidden).index_copy(0, slot, h)
        xp = pos.new_zeros(num * n_max, 3).index_copy(0, slot, pos)
        node_mask = pos.new_zeros(num * n_max, 1).index_fill(0, slot, 1.0)
        pair = torch.arange(n_max)
        rows = (torch.arange(num)[:, None, None] * n_max + pair[None, :, None]).expand(num, n_max, n_max)
        cols = (torch.arange(num)[:, None, None] * n_max + pair[None, None, :]).expand(num, n_max, n_max)
        rows, cols = rows.reshape(-1), cols.reshape(-1)
        edge_mask = (node_mask[rows] * node_mask[cols]) * (rows != cols).unsqueeze(-1)
        d2_edm = (xp[rows] - xp[cols]).square().sum(-1, keepdim=True)
        h_edm, x_edm = block(hp, xp, [rows, cols], node_mask=node_mask, edge_mask=edge_mask,
                             edge_attr=d2_edm)
    return {"what": "EDM's EquivariantBlock (one GCL + EquivariantUpdate) vs EquivariantConv("
                    "coords_from='nodes') with the block's weights, random unit-scale weights, "
                    "a real QM9 batch, float64: largest absolute differences",
            "atoms": len(index), "max_abs_diff_h": float((h_ours - h_edm[slot]).abs().max()),
            "max_abs_diff_x": float((x_ours - x_edm[slot]).abs().max()),
            "max_abs_step_x": float((x_ours - pos).abs().max())}


# --------------------------------------------------------------------------- timing

def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _alternate(fns: dict, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Wall-clock and CPU seconds (this process's, one thread) of each function per round;
    the order rotates every round."""
    names = list(fns)
    out = {clock: {name: [] for name in fns} for clock in ("wall", "cpu")}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall, cpu = time.perf_counter(), time.process_time()
            fns[name]()
            out["cpu"][name].append(time.process_time() - cpu)
            out["wall"][name].append(time.perf_counter() - wall)
    return out


def _summaries(clocks: dict[str, dict[str, list[float]]], per: float, unit: str) -> dict:
    return {clock: _summary(seconds, per, unit) for clock, seconds in clocks.items()}


def _summary(seconds: dict[str, list[float]], per: float, unit: str) -> dict:
    """Rates and ratios of the medians; of the fastest runs too (the least disturbed by the
    other processes on a shared CPU)."""
    median = {k: statistics.median(v) for k, v in seconds.items()}
    rate = {k: per / v for k, v in median.items()}
    fastest = {k: min(v) for k, v in seconds.items()}
    return {"seconds_all": seconds, "seconds_median": median, f"{unit}_per_second": rate,
            "ratio_vs_edm": {k: rate[k] / rate["edm"] for k in rate if k != "edm"},
            "molgen_over_molgen_edm_shapes": rate["molgen"] / rate["molgen_edm_shapes"],
            "seconds_min": fastest,
            "ratio_vs_edm_of_fastest": {k: fastest["edm"] / fastest[k] for k in fastest if k != "edm"}}


def _report(what: str, row: dict) -> None:
    for clock in ("wall", "cpu"):
        summary = row[clock]
        print(f"{what}, {clock} s: " + ", ".join(f"{k} {v:.3f}" for k, v in summary["seconds_median"].items())
              + " | throughput over EDM's: " + ", ".join(f"{k} {v:.2f}x" for k, v in summary["ratio_vs_edm"].items()),
              flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--edm-repo", required=True,
                   help="a checkout (or bare git copy) of ehoogeboom/e3_diffusion_for_molecules")
    p.add_argument("--batch", type=int, nargs="+", default=[64, 256], help="molecules per denoiser call")
    p.add_argument("--calls", type=int, default=5, help="timed rounds of one call per model")
    p.add_argument("--sample-batch", type=int, nargs="*", default=[64, 256],
                   help="molecules per full sample (none: skip the samples)")
    p.add_argument("--sample-rounds", type=int, default=1, help="timed full samples per model")
    p.add_argument("--steps", type=int, default=50, help="sampler steps (NFE) of a full sample")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="also time molgen's network under torch.compile")
    p.add_argument("--out", default=str(DEFAULT_JSON))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    # both networks are untrained (seeded initialisations): their samples drift to positions
    # of ~1e3, where SiLU returns denormal floats, which the CPU multiplies up to 50% slower;
    # flushing them to zero keeps the timing that of the arithmetic, for both alike
    flush_denormal = torch.set_flush_denormal(True)
    try:
        return measure(args, flush_denormal, " ".join(argv if argv is not None else sys.argv[1:]))
    finally:
        torch.set_flush_denormal(False)  # torch's default, for a caller in the same process


def measure(args, flush_denormal: bool, command: str) -> int:
    from molgen.diffusion import CountingDenoiser, SamplerConfig, sample
    from molgen.nn.egnn import EGNN
    from molgen.tasks.qm9 import QM9Task
    from molgen.train import build_schedule, load_config

    load_start = _load()
    scratch = tempfile.TemporaryDirectory(prefix="edm_")
    models, egnn_new, commit = import_edm(args.edm_repo, scratch.name)
    cfg = load_config(["experiment=qm9", "device=cpu"])
    task, schedule = QM9Task(cfg.task), build_schedule(cfg.diffusion)
    sampler = SamplerConfig.from_dict({**cfg.sampler.to_dict(), "steps": args.steps})
    builders = {"molgen": lambda: task.build_model(),
                "molgen_edm_shapes": lambda: EGNN(task.num_features, hidden=cfg.task.hidden,
                                                  layers=cfg.task.layers, coords_from="nodes"),
                "edm": lambda: edm_network(models, task.num_features)}
    nets = {}
    for name, build in builders.items():
        torch.manual_seed(args.seed)
        nets[name] = build().eval()
    if args.compile:
        nets["molgen_compiled"] = torch.compile(nets["molgen"])
    description = {
        "molgen": "molgen.nn.egnn.EGNN, experiment=qm9 (9 x 256, fully connected, coordinate "
                  "MLP on the message: 256 -> 256 -> 1)",
        "molgen_edm_shapes": "molgen.nn.egnn.EGNN(coords_from='nodes'): EDM's MLP shapes "
                             "(coordinate MLP on [h_i, h_j, d2, d2_0]: 514 -> 256 -> 256 -> 1)",
        "edm": "EDM's EGNN_dynamics_QM9 (egnn/models.py + egnn/egnn_new.py), QM9 settings, "
               "padded batches with EDM's masks",
        "molgen_compiled": "the molgen network, same weights, through torch.compile (inductor, "
                           "default settings)"}
    results = {
        "what": "CPU, float32, no gradients, real QM9 training molecules; the denoisers "
                "timed alternately (order rotating every round), medians; ratio_vs_edm: "
                "throughput over EDM's (calls/s, or molecules/s of a full sample at equal NFE); "
                "'wall': wall-clock seconds, 'cpu': this process's CPU seconds (one thread: "
                "the work done, less sensitive than wall time to other processes' load)",
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/egnn_speed.py " + command,
        "edm": {"repository": "ehoogeboom/e3_diffusion_for_molecules", "commit": commit,
                "files": "egnn/egnn_new.py, egnn/models.py", "settings": EDM_SETTINGS},
        "models": {name: {"description": description[name],
                          "parameters": sum(p.numel() for p in net.parameters()),
                          "parameters_in_layers": sum(
                              p.numel() for k, p in net.named_parameters()
                              if k.startswith("convs.") or ".e_block_" in k)}
                   for name, net in nets.items()},
        "sampler": sampler.to_dict(), "threads": args.threads, "flush_denormal": flush_denormal,
        "weights": "untrained, torch.manual_seed(seed) before each network is built",
        "calls": [], "samples": []}

    def setup(batch: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        data = task.batch(batch, g)
        sizes = torch.bincount(data.space.index(data.x0))
        shape = {"batch": batch, "atoms": len(data.x0), "edges": int((sizes * (sizes - 1)).sum()),
                 "edm_padded_edges": batch * int(sizes.max()) ** 2}
        dens = {k: task.denoiser(net, schedule, cfg.diffusion.prediction, data.space) for k, net in nets.items()}
        return data, g, shape, dens

    with torch.no_grad():
        data, _, _, _ = setup(16, args.seed)
        results["equivalence"] = check_edm_shapes(egnn_new, data.space, data.x0[:, :3], args.seed)
        print(f"EDM block vs molgen_edm_shapes: max |dh| {results['equivalence']['max_abs_diff_h']:.2e}, "
              f"max |dx| {results['equivalence']['max_abs_diff_x']:.2e}", flush=True)
        for batch in args.batch:
            data, g, shape, dens = setup(batch, args.seed)
            t = torch.full((batch,), 0.5)
            xt = data.x0 + 0.5 * data.space.noise(data.x0, g)
            calls = {k: (lambda d=d: d(xt, t)) for k, d in dens.items()}
            warmup = {}
            for k, fn in calls.items():  # warm-up: EDM caches its edge lists, inductor compiles
                t0 = time.perf_counter()
                out = fn()
                warmup[k] = time.perf_counter() - t0
                if k == "molgen":
                    reference = out
                elif k == "molgen_compiled":
                    shape["compiled_max_abs_diff"] = max(float((a - b).abs().max())
                                                         for a, b in zip(out, reference))
            before = _load()
            row = {**shape, "warmup_seconds": warmup, "loadavg_before": before,
                   **_summaries(_alternate(calls, args.calls), 1.0, "calls"), "loadavg_after": _load()}
            results["calls"].append(row)
            _report(f"batch {batch:4d}, one call", row)
            write_json(Path(args.out), results)
        for batch in args.sample_batch:
            data, g, shape, dens = setup(batch, args.seed)
            x_T = data.space.noise(torch.empty_like(data.x0), g)
            counting = {k: CountingDenoiser(d) for k, d in dens.items()}
            runs = {k: (lambda c=c: sample(c, x_T, sampler)) for k, c in counting.items()}
            before = _load()
            seconds = _alternate(runs, args.sample_rounds)
            nfe = {k: c.nfe // args.sample_rounds for k, c in counting.items()}
            row = {**shape, "nfe": nfe, "loadavg_before": before,
                   **_summaries(seconds, float(batch), "molecules"), "loadavg_after": _load()}
            results["samples"].append(row)
            _report(f"batch {batch:4d}, full sample ({nfe['molgen']} NFE)", row)
            write_json(Path(args.out), results)
    rows = results["samples"] or results["calls"]
    results["goals"] = {
        name: {"goal_ratio_vs_edm": goal, "measured_on": "samples" if results["samples"] else "calls",
               **{f"measured_{clock}": {str(r["batch"]): round(r[clock]["ratio_vs_edm"][name], 2) for r in rows}
                  for clock in ("wall", "cpu")},
               "met": all(r[clock]["ratio_vs_edm"][name] >= goal for r in rows for clock in ("wall", "cpu"))}
        for name, goal in GOALS.items()}
    results["machine"] = {"platform": platform.platform(), "python": sys.version.split()[0],
                          "torch": torch.__version__, "cpu_count": os.cpu_count(),
                          "processor": platform.processor(),
                          "loadavg_1_5_15min_start": load_start, "loadavg_1_5_15min_end": _load()}
    write_json(Path(args.out), results)
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
