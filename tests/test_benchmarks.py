"""The benchmark scripts still run against the package: every command line answers --help, and
each script does one tiny real run whose JSON holds the keys benchmarks/README.md describes,
with finite numbers.  (image_fid's device step and `score --samples-from` run in
test_device_step; device_step.py is their helper module, with no command line.)"""
import importlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from molecule_helpers import needs_qm9
from molgen.data.paths import default_cache_dir, default_data_root

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the scripts import device_step as a top-level module

SCRIPTS = {  # script → its subcommands
    "backbones": [],
    "backbones_device": [],
    "conformers": [],
    "core_samplers": [],
    "docking": [],
    "docking_rerank": [],
    "egnn_speed": [],
    "image_fid": ["score", "device"],
    "qm9_budget": ["train", "evaluate"],
    "qm9_conditional": ["regressor", "evaluate"],
    "qm9_generation": ["device", "metrics", "samplers", "throughput"],
}
HELPERS = {"device_step"}
USER_CACHE = default_cache_dir()  # read before conftest's `cache` fixture points MOLGEN_CACHE elsewhere
PLATINUM = default_data_root() / "conformers" / "platinum_diverse_2017_01_dev.sdf.gz"
PDOWNB = default_data_root() / "proteins" / "pdownb_single_chain_40-256.tar.gz"
EDM_REPO = os.environ.get("MOLGEN_EDM_REPO")
"""A copy of ehoogeboom/e3_diffusion_for_molecules (checkout or bare git) for egnn_speed."""


def bench(script: str, *args) -> subprocess.CompletedProcess:
    """benchmarks/<script>.py args in a subprocess (MOLGEN_DATA and OMP_NUM_THREADS=1 inherited)."""
    return subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def numbers(obj, path=""):
    """(path, value) of every number in a JSON tree."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from numbers(v, f"{path}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield path, obj


def assert_finite(obj):
    bad = [p for p, v in numbers(obj) if not math.isfinite(v)]
    assert bad == [], f"not finite: {bad[:10]}"


# -- every command line answers --help -----------------------------------------------------------

def test_every_script_is_listed_and_the_helper_has_no_command_line():
    assert {p.stem for p in BENCHMARKS.glob("*.py")} == set(SCRIPTS) | HELPERS
    for helper in HELPERS:
        source = (BENCHMARKS / f"{helper}.py").read_text()
        assert "__main__" not in source and "argparse" not in source


COMMANDS = [[name] for name in SCRIPTS] + [[name, sub] for name, subs in SCRIPTS.items() for sub in subs]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help(command):
    result = bench(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and "Traceback" not in result.stderr
    if len(command) == 1 and SCRIPTS[command[0]]:  # the subcommands it lists are those above
        listed = re.search(r"\{([\w,]+)\}", result.stdout).group(1).split(",")
        assert listed == SCRIPTS[command[0]]


# -- one tiny run of each script -----------------------------------------------------------------

def test_core_samplers_tiny_run(tmp_path):
    out = tmp_path / "cs.json"
    result = bench("core_samplers", "--n", 200, "--T", 100, "--nfe", 5, "--rk45-tol", 1e-2, "--mmd-n", 100,
                   "--projections", 16, "--floor-draws", 2, "--seeds", 1, "--threads", 1, "--out", out)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert {"settings", "machine", "code", "noise_floor", "grid", "rk45", "total_runtime_s"} <= set(data)
    assert data["settings"]["n"] == 200 and data["settings"]["T"] == 100
    grid = data["grid"]
    samplers = load_script("core_samplers").SAMPLERS
    assert len(grid) == len(samplers) and {r["nominal_nfe"] for r in grid} == {5}  # every sampler at NFE 5
    for row in grid:
        assert row["nfe"] == row["expected_nfe"] and row["nonfinite"] == 0  # Heun: 3 steps, 5 NFE
        assert {"sw", "mmd", "weight_err", "time_s", "per_seed", "config"} <= set(row)
    assert len(data["rk45"]) == 1 and data["rk45"][0]["nfe"] > 0
    assert {"sw", "sw_sd", "mmd", "weight_err", "draws"} <= set(data["noise_floor"])
    assert_finite(data)
    assert out.with_suffix(".png").stat().st_size > 0


def test_core_samplers_on_a_trained_model(tmp_path):
    """--checkpoint: the table of a trained toy2d model on its own mixture and schedule, with
    its error against the exact eps*: positive, largest where the data are (small t), and zero
    at t = 1, where eps* = x_1 exactly and a v-model's eps is x_t-dominated."""
    from molgen.train import load_config, train

    train(load_config(["progress=false", f"out_dir={tmp_path}", "steps=40", "batch_size=64",
                       "task.mixture=three", "eval_samples=8", "+diffusion.schedule_params.T=200"]))
    out = tmp_path / "cs.json"
    result = bench("core_samplers", "--checkpoint", tmp_path / "checkpoint.pt", "--n", 200, "--nfe", 4,
                   "--samplers", "ddim", "--rk45-tol", 1e-2, "--mmd-n", 100, "--projections", 16,
                   "--floor-draws", 2, "--seeds", 1, "--threads", 1, "--no-plot", "--out", out)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    s, model = data["settings"], data["model"]
    assert (s["mixture"], s["schedule"], s["T"]) == ("three", "cosine", 200)
    assert model["kind"] == "trained" and model["step"] == 40
    err = dict(zip(model["error"]["t"], model["error"]["mse"]))
    assert all(v >= 0 for v in err.values()) and err[0.01] > 1e-3 and err[1.0] < 1e-6
    assert [r["nfe"] for r in data["grid"]] == [4] and data["grid"][0]["nonfinite"] == 0
    assert_finite(data)

    bad = bench("core_samplers", "--checkpoint", tmp_path / "missing.pt", "--out", out)
    assert bad.returncode == 2 and "--checkpoint" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.skipif(not PLATINUM.exists(), reason="Platinum set absent (MOLGEN_DATA)")
def test_conformers_tiny_run(tmp_path):
    out = tmp_path / "conformers.json"
    methods = ["etkdg", "molgen:dpmpp_2m:2"]
    result = bench("conformers", "--datasets", "platinum", "--limit", 2, "--k", 1, "--methods", *methods,
                   "--no-quality", "--out", out)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["settings"]["methods"] == methods and data["settings"]["quality"] is False
    platinum = data["results"]["platinum"]
    info = platinum["info"]
    assert info["used"] == 2 and info["size"] == 2294 and info["part"] == "test"
    assert info["part_sizes"] == {"train": 1383, "valid": 477, "test": 434}
    assert info["pool"] == 434 - 32  # the legacy choice subset's molecules left out of test
    from molgen.conformers.data import platinum_part

    assert [platinum_part(m["name"]) for m in platinum["molecules"][methods[0]]] == ["test", "test"]
    for method in methods:
        summary = platinum["summary"][method]
        assert summary["molecules"] == 2 and summary["generation_failed"] == 0 and summary["errors"] == 0
        (rmsd,) = summary["rmsd"]
        assert rmsd["k"] == 1 and rmsd["n"] == 2 and 0 <= rmsd["median"] < 10
        assert {"mean", "pct_le_0.5", "pct_le_1", "pct_le_2"} <= set(rmsd)
        assert [len(m["rmsd"]) for m in platinum["molecules"][method]] == [1, 1]
        (gap,) = summary["above_floor"]
        floors = [min(f["rmsd"]) for f in platinum["torsion_floor"]["molecules"]]
        best = [min(m["rmsd"]) for m in platinum["molecules"][method]]
        assert gap["n"] == 2 and gap["median_gap"] == pytest.approx(np.median(np.subtract(best, floors)))
    # k = 1 conformer: one local structure, the crystal's torsions set on it
    assert [len(f["rmsd"]) for f in platinum["torsion_floor"]["molecules"]] == [1, 1]
    assert platinum["torsion_floor"]["rmsd"][0]["k"] == 1 and max(floors) < 2.0
    assert_finite(data)


@pytest.mark.skipif(not PDOWNB.exists(), reason="PDownB archive absent (MOLGEN_DATA)")
def test_backbones_tiny_run(tmp_path):
    from molgen.cli import main

    assert main(["train", "experiment=backbones_tiny", f"out_dir={tmp_path / 'run'}", "progress=false"]) == 0
    out = tmp_path / "backbones.json"
    result = bench("backbones", "--checkpoint", tmp_path / "run" / "checkpoint.pt", "--lengths", 30,
                   "--n", 3, "--samplers", "dpmpp_2m:2", "--tm-samples", 2, "--out", out)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    rows = data["results"]["30"]
    assert set(rows) == {"test chains", "random walk", "dpmpp_2m:2"} and rows["dpmpp_2m:2"]["n"] == 3
    assert {"bonds_ok", "clash_free", "right_handed", "helix", "strand", "js_tau", "js_alpha",
            "radius_of_gyration", "rg_test_fit"} <= set(rows["dpmpp_2m:2"])
    assert rows["test chains"]["right_handed"] > 0.9 and rows["test chains"]["bonds_ok"] > 0.9
    inpainted = data["motif_scaffolding"]["inpaint"]  # the motif in place by construction
    assert inpainted["success"] == 1.0 and len(inpainted["per_motif"]) == 10
    assert {m["spans"] for m in inpainted["per_motif"]} <= {1, 2}
    assert all(m["success"] == 1.0 and m["median_rmsd"] < 1e-3 for m in inpainted["per_motif"])
    assert 0 <= data["motif_scaffolding"]["condition w=1"]["mirror_success"] <= 1
    guided = data["motif_scaffolding"]["guided w_r=10"]
    assert guided["success"] == 1.0 and 0 <= guided["success_intact"] <= guided["success"]
    bad = bench("backbones", "--samplers", "ddim:ten", "--out", tmp_path / "no.json")
    assert bad.returncode == 2 and "sampler 'ddim:ten'" in bad.stderr.splitlines()[-1]
    for gain, error in (("100:1,2/50:1.5,2", "lengths must increase"), ("1,2,3", "pair or"),
                        ("50:1,-2", "strand gain must be")):
        bad = bench("backbones", "--target-gain", gain, "--out", tmp_path / "no.json")
        assert bad.returncode == 2 and error in bad.stderr.splitlines()[-1], bad.stderr
    assert not (tmp_path / "no.json").exists()
    assert_finite(data)
    assert out.with_suffix(".png").stat().st_size > 0


@pytest.mark.skipif(not PDOWNB.exists(), reason="PDownB archive absent (MOLGEN_DATA)")
def test_backbones_device_step_on_cpu_resumes(tmp_path):
    """The GPU step's variant trainer, on the CPU: a clock-limited run, then a resumed one."""
    args = ["tiny", "task.hidden=8", "task.layers=1", "task.neighbours=4", "task.crop=24",
            "task.min_length=20", "batch_size=2", "eval_samples=1", "--seconds", 2, "--device", "cpu",
            "--out", tmp_path / "out", "--workdir", tmp_path / "work"]
    steps = []
    for _ in range(2):
        result = bench("backbones_device", *args)
        assert result.returncode == 0, result.stderr
        summary = json.loads((tmp_path / "out" / "tiny.json").read_text())
        steps.append((summary["steps"], summary["steps_this_run"]))
        assert (tmp_path / "out" / "tiny.pt").stat().st_size > 0 and summary["parameters"] > 0
    (first, done), (total, more) = steps
    assert first == done > 0 and total == first + more and more > 0


@pytest.fixture(scope="module")
def qm9_cache(cache):
    """conftest's shared MOLGEN_CACHE, given the table already parsed in the user's cache when
    there is one (parsing qm9pack takes ~10 s)."""
    here = default_cache_dir()
    here.mkdir(parents=True, exist_ok=True)
    for table in USER_CACHE.glob("qm9pack-*.npz"):
        if not (here / table.name).exists():
            (here / table.name).symlink_to(table)


def load_script(name: str):
    """A benchmark script as a module, to call its main() in this process: in a subprocess the
    QM9 runs would spend most of their time importing torch-geometric and loading QM9 again."""
    return importlib.import_module(name)


def test_docking_rerank_on_synthetic_candidates(tmp_path):
    import docking_rerank

    rng = np.random.default_rng(0)

    def record(i: int, set_: str) -> dict:  # 8 poses: the crystal-like one scores 0.1 worse
        n = 8
        rmsd = np.r_[0.5, rng.uniform(3, 8, n - 1)]
        scores = np.r_[-9.0, -9.1, rng.uniform(-8, -6, n - 2)]
        pos = rng.normal(size=(n, 3)) * 3
        pair = np.linalg.norm(pos[:, None] - pos[None], axis=-1)[np.triu_indices(n, 1)]
        return {"set": set_, "candidates": {
            "scores": scores.tolist(), "rmsd": rmsd.tolist(), "pair_rmsd": pair.tolist(),
            "inter_terms": rng.normal(size=(n, 5)).tolist(), "intra": rng.normal(size=n).tolist()}}

    for name, set_ in (("valid", "casf2016"), ("test", "astex")):
        earlier = {f"{set_}/c0/molgen_old": record(0, set_)}  # a complex run twice counts once
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"complexes": earlier | {f"{set_}/c{i}/molgen": record(i, set_) for i in range(12)}}))
    assert [c.key for c in docking_rerank.load([tmp_path / "valid.json"])][:2] == \
        ["casf2016/c0/molgen", "casf2016/c1/molgen"]
    c = docking_rerank.load([tmp_path / "test.json"])[0]
    assert c.ranked(c.scores)[0] == 1 and c.success(c.scores) == (False, True)
    assert c.success(c.scores - 10 * (c.rmsd < 2)) == (True, True)
    result = bench("docking_rerank", "--fit", tmp_path / "valid.json", "--test", tmp_path / "test.json",
                   "--out", tmp_path / "rerank.json")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "rerank.json").read_text())
    assert report["test"]["astex"]["vina"]["top1"] == 0 and report["test"]["astex"]["n"] == 12
    assert_finite(report)


@needs_qm9
def test_qm9_generation_throughput_tiny_run(qm9_cache, tmp_path):
    out = tmp_path / "qm9_generation.json"
    assert load_script("qm9_generation").main(["throughput", "--threads", "1", "--batch", "2", "--calls", "1",
                                          "--out", str(out)]) == 0
    data = json.loads(out.read_text())["throughput"]
    assert {"what", "models", "calls", "rows", "machine"} <= set(data)
    assert [(r["model"], r["threads"], r["batch"]) for r in data["rows"]] == [("egnn", 1, 2), ("nequip", 1, 2)]
    for row in data["rows"]:
        assert len(row["denoiser_call_seconds_all"]) == len(row["train_step_seconds_all"]) == 1
        assert row["seconds_per_denoiser_call"] > 0 and row["training_molecules_per_second"] > 0
        assert row["atoms"] > 2 and row["edges"] > 0 and row["parameters"] > 0
    assert data["rows"][0]["parameters"] > 4e6  # the EGNN of experiment=qm9
    assert_finite(data)


@needs_qm9
def test_qm9_budget_tiny_run_resumes_at_its_last_budget_point(qm9_cache, tmp_path):
    qm9_budget = load_script("qm9_budget")
    work, out = tmp_path / "budget", tmp_path / "qm9_budget.json"
    assert qm9_budget.main(["train", "--arch", "nequip_3", "--workdir", str(work), "--minutes", "0.01"]) == 0
    assert qm9_budget.main(["train", "--arch", "nequip_3", "--workdir", str(work), "--minutes", "0.01", "0.1"]) == 0
    assert qm9_budget.main(["evaluate", "--workdir", str(work), "-n", "2", "--out", str(out)]) == 0
    assert qm9_budget.main(["evaluate", "--workdir", str(work), "-n", "3", "--out", str(out),
                            "--sampler", "ddpm:3:spacing=trailing", "--at", "0.1"]) == 0
    data = json.loads(out.read_text())
    rows = data["architectures"]["nequip_3"]["snapshots"]
    assert [sorted(r["samples"]) for r in rows] == [["default_n2"], ["ddpm_3_spacing=trailing_n3", "default_n2"]]
    assert rows[1]["samples"]["ddpm_3_spacing=trailing_n3"]["sampler"]["kind"] == "ddpm"
    assert [r["minutes"] for r in rows] == [0.01, 0.1] and list(data["architectures"]) == ["nequip_3"]
    assert 0.6 <= rows[0]["cpu_seconds"] < rows[1]["cpu_seconds"] and 0 < rows[0]["step"] < rows[1]["step"]
    assert [r["threads"] for r in rows] == [torch.get_num_threads()] * 2  # whose CPU time the budget counts
    assert all(0 <= m[k] <= 1 for r in rows for m in r["samples"].values()
               for k in ("atom_stability", "molecule_stability", "validity"))
    assert out.with_suffix(".png").stat().st_size > 0
    assert_finite(data)
    # the samplers rows of qm9_generation on a snapshot: the same molecules for every row
    rows_json = tmp_path / "samplers.json"
    assert load_script("qm9_generation").main([
        "samplers", "--model", str(work / "nequip_3" / rows[0]["model"]), "-n", "2",
        "--samplers", "ddim:2,dpmpp_2m:3:spacing=logsnr:t_min=0.001", "--out", str(rows_json)]) == 0
    rows = json.loads(rows_json.read_text())["rows"]
    assert [(r["row"], r["nfe"], r["sampler"]["t_min"]) for r in rows] == [
        ("ddim_2", 2, None), ("dpmpp_2m_3_spacing=logsnr_t_min=0.001", 3, 0.001)]
    assert all(0 <= r["atom_stability"] <= 100 for r in rows)


@needs_qm9
@pytest.mark.skipif(not EDM_REPO, reason="egnn_speed needs a copy of EDM's repository (MOLGEN_EDM_REPO)")
def test_egnn_speed_tiny_run(qm9_cache, tmp_path):
    out = tmp_path / "egnn_speed.json"
    assert load_script("egnn_speed").main(["--edm-repo", EDM_REPO, "--batch", "3", "--calls", "2",
                                           "--sample-batch", "2", "--steps", "2", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {"edm", "models", "equivalence", "calls", "samples", "goals", "machine"} <= set(data)
    assert data["equivalence"]["max_abs_diff_x"] < 1e-9 < data["equivalence"]["max_abs_step_x"]
    assert data["equivalence"]["max_abs_diff_h"] < 1e-9
    models = data["models"]
    assert models["molgen_edm_shapes"]["parameters_in_layers"] == models["edm"]["parameters_in_layers"]
    assert models["molgen"]["parameters_in_layers"] < models["edm"]["parameters_in_layers"]
    (calls,), (samples,) = data["calls"], data["samples"]
    assert calls["batch"] == 3 and all(len(v) == 2 for v in calls["cpu"]["seconds_all"].values())
    assert samples["nfe"] == {"molgen": 2, "molgen_edm_shapes": 2, "edm": 2}
    for clock in ("wall", "cpu"):
        assert set(samples[clock]["ratio_vs_edm"]) == {"molgen", "molgen_edm_shapes"}
    assert_finite(data)


@needs_qm9
def test_qm9_generation_device_step_on_cpu_then_metrics(qm9_cache, tmp_path):
    """The GPU recipe end to end on the CPU with qm9_tiny: train, export, sample, NLL; then
    `metrics` on what came back."""
    qm9_generation = load_script("qm9_generation")
    out = tmp_path / "out"
    assert qm9_generation.main([
        "device", "--device", "cpu", "--experiment", "qm9_tiny", "--workdir", str(tmp_path / "work"),
        "--out", str(out), "--budget", "120", "--train-seconds", "2", "--min-train-seconds", "1",
        "--slack", "0", "--samplers", "ddim:2,dpmpp_2m:2", "--samples", "8", "--min-samples", "1",
        "--sample-batch", "8", "--nll-molecules", "2", "--nll-tol", "1e-2", "--nll-reserve", "10"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["training"]["steps_this_run"] > 0 and summary["gpu"]["name"] == "cpu"
    assert all((out / part).is_file() for part in summary["carry_parts"])
    for label in ("ddim_2", "dpmpp_2m_2"):
        row = summary["sampling"][label]
        assert row["n"] == 8 and row["nfe"] == 2 and 0 <= row["atom_stability"] <= 1
    assert summary["nll"]["molecules"] == 2 and summary["nll"]["nfe"] > 0
    assert_finite(summary)

    # `metrics` compares with the SMILES of the train split, cached in the run folder: a stand-in
    # saves an RDKit pass over 100,000 molecules
    (out / "train_smiles.txt").write_text("C\nCC\nCCO\n")
    result = tmp_path / "metrics.json"
    assert qm9_generation.main(["metrics", "--run", str(out), "--out", str(result)]) == 0
    data = json.loads(result.read_text())
    assert {"protocol", "training", "samples", "nll", "edm_published", "device_run", "checkpoint"} <= set(data)
    assert set(data["samples"]) == {"ddim_2", "dpmpp_2m_2"}
    for row in data["samples"].values():
        assert row["n"] == 8
        for key in ("atom_stability", "molecule_stability", "validity", "valid_unique", "uniqueness", "novelty"):
            assert 0 <= row[key] <= 100
    assert data["training"]["steps"] == summary["training"]["steps"]
    assert data["checkpoint"]["bytes"] == summary["carry_bytes"]  # the parts joined again
    assert_finite(data)

    # the next lease continues the same run from what came back, on a machine with the train
    # split alone (as gpu.sh --prepare qm9_train sends it): no NLL then
    again = tmp_path / "again"
    assert qm9_generation.main([
        "device", "--device", "cpu", "--experiment", "qm9_tiny", "--workdir", str(tmp_path / "work2"),
        "--out", str(again), "--resume", str(out / "checkpoint_carry.pt"), "--override", "steps=100000",
        "--budget", "60",
        "--train-seconds", "2", "--min-train-seconds", "1", "--slack", "0", "--samplers", "ddim:2",
        "--samples", "4", "--min-samples", "1", "--sample-batch", "4", "--nll-molecules", "0"]) == 0
    second = json.loads((again / "summary.json").read_text())["training"]
    assert second["steps"] == summary["training"]["steps"] + second["steps_this_run"]
    assert second["epochs"] > summary["training"]["epochs"]


@needs_qm9
def test_qm9_conditional_tiny_regressor_generator_and_evaluation(qm9_cache, tmp_path):
    from molgen.train import CHECKPOINT, load_config, train

    qm9_conditional = load_script("qm9_conditional")
    regressor = tmp_path / "regressor"
    qm9_conditional.main(["regressor", "--property", "alpha", "--out", str(regressor), "--steps", "2",
                          "--hidden", "8", "--layers", "1", "--batch-size", "4"])
    metrics = json.loads((regressor / "metrics.json").read_text())
    assert metrics["config"]["property"] == "alpha" and metrics["valid_mae"] > 0 and metrics["test_mae"] > 0
    assert_finite(metrics)

    generator = tmp_path / "generator"
    train(load_config(["experiment=qm9_tiny", "task.condition=alpha", "steps=1", "eval_samples=4",
                       "progress=false", f"out_dir={generator}"]))
    out = tmp_path / "qm9_conditional.json"
    qm9_conditional.main(["evaluate", "--generator", str(generator / CHECKPOINT),
                          "--regressor", str(regressor / "regressor.pt"), "--guidance", "1", "0",
                          "-n", "16", "--sampler", "ddpm", "--steps", "2", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["property"] == "alpha" and data["n"] == 16 and len(data["sizes"]) == len(data["targets"]) == 16
    assert [row["guidance"] for row in data["rows"]] == [0.0, 1.0]  # sorted
    for row in data["rows"]:
        assert row["mae"] > 0 and len(row["predicted"]) == 16 and 0 <= row["atom_stability"] <= 1
        assert {"target_slope", "seconds", "molecule_stability", "validity"} <= set(row)
    assert set(data["reference"]) == {"qm9", "atoms", "naive"}
    assert 3 < data["reference"]["atoms"] < 5  # the atom count alone: 3.84 Bohr³ (EDM 3.86)
    assert data["edm_published"]["edm"] == 2.76
    assert_finite(data)
