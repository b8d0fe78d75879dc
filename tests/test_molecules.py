"""QM9 generation through the training machinery: batches divided by molecules, the tiny
experiment trains, resumes exactly and matches under DDP, and `molgen sample` writes SDF and
XYZ files RDKit reads back."""
import importlib.util

import pytest
import torch

from molgen import qm9
from molgen.training import CHECKPOINT, load_checkpoint, load_config, train

from molecule_helpers import com, gen, shuffled_space, state
from test_cli import run
from test_training import check_ddp_matches_one_process, check_killed_run_resumes_exactly

TINY = ["experiment=qm9_tiny", "progress=false"]

needs_qm9 = pytest.mark.skipif(
    importlib.util.find_spec("qm9pack") is None
    or not (qm9.default_data_root() / qm9.SPLIT_FILE).is_file(),
    reason="QM9 needs qm9pack and EDM's split file (MOLGEN_DATA)")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The parsed-QM9 cache test_qm9.py and test_metrics.py share, for this process and the
    training subprocesses, so qm9pack is parsed once per session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOLGEN_CACHE", str(tmp_path_factory.getbasetemp() / "molgen-cache"))
        yield


@pytest.fixture(scope="module")
def checkpoint(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("qm9_tiny")
    train(load_config([*TINY, "steps=3", f"out_dir={out}"]))
    return out / CHECKPOINT


def test_subset_takes_whole_molecules_of_an_unsorted_batch():
    space = shuffled_space([2, 5, 3, 4])
    x = state(space)
    part, rows = space.subset(1, 3)
    assert part.num_graphs == 2 and part.sizes.tolist() == [5, 3]
    assert torch.equal(x[rows], x[(space.batch >= 1) & (space.batch < 3)])
    assert torch.equal(part.index(x[rows]), space.batch[rows] - 1)


@needs_qm9
def test_batches_are_centred_molecules_drawn_from_the_generator(cache):
    from molgen.molecules import QM9Config, QM9Task

    task = QM9Task(QM9Config(name="qm9", hidden=8, layers=1, charges=True, source="qm9pack",
                             sample_batch=4))
    x, space = task.batch(6, gen(0))
    again, _ = task.batch(6, gen(0))
    assert torch.equal(x, again) and space.num_graphs == 6 and x.shape == (len(space.batch), 9)
    assert float(com(space, x).abs().max()) < 1e-4  # CoM-free
    assert set(x[:, 3:8].unique().tolist()) == {0.0, 0.25}  # EDM-scaled one-hot
    assert int(task.counts().sum()) == 100_000 and task.counts().argmax() == 19  # most: 19 atoms


@needs_qm9
def test_tiny_qm9_run_resumes_exactly(cache, tmp_path):
    check_killed_run_resumes_exactly(tmp_path, TINY, steps=8, every=3, kill=5)


@needs_qm9
def test_tiny_qm9_ddp_two_ranks_match_one_process(cache, tmp_path):
    check_ddp_matches_one_process(tmp_path, TINY)


@needs_qm9
def test_checkpoint_keeps_the_atom_count_distribution(checkpoint):
    counts = load_checkpoint(checkpoint)["task"]["node_counts"]  # weights_only
    assert counts.dtype == torch.int64 and int(counts.sum()) == 100_000 and len(counts) == 30
    metrics = (checkpoint.parent / "eval.json").read_text()
    assert all(key in metrics for key in ("atom_stability", "molecule_stability", "validity"))


@needs_qm9
@pytest.mark.parametrize("atoms", [None, 9])
def test_sample_writes_sdf_and_xyz(capsys, tmp_path, checkpoint, atoms):
    from rdkit import Chem

    sdf = tmp_path / "out.sdf"
    extra = [] if atoms is None else ["--atoms", atoms]
    code, out, err = run(capsys, "sample", "--checkpoint", checkpoint, "-n", 6,
                         "--sampler", "dpmpp_2m", "--steps", 4, "-o", sdf, *extra)
    assert code == 0, err
    assert "dpmpp_2m 4 steps" in out and "molecule stability" in out and "validity" in out
    mols = list(Chem.SDMolSupplier(str(sdf), sanitize=False, removeHs=False))
    assert len(mols) == 6 and all(m is not None and m.GetNumConformers() == 1 for m in mols)
    frames = (tmp_path / "out.xyz").read_text().splitlines()
    sizes = [m.GetNumAtoms() for m in mols]
    assert frames[0] == str(sizes[0]) and len(frames) == sum(sizes) + 2 * len(sizes)
    if atoms is not None:
        assert sizes == [atoms] * 6


@needs_qm9
@pytest.mark.parametrize("args, message", [
    (["--atoms", 0], "at least one atom"),
    (["-n", 0], "-n must be >= 1"),
    (["--sampler", "nope"], "unknown sampler 'nope'"),
])
def test_bad_sample_input_is_one_line_error(capsys, tmp_path, checkpoint, args, message):
    code, _, err = run(capsys, "sample", "--checkpoint", checkpoint, "-o", tmp_path / "x.sdf", *args)
    assert code == 2 and err.startswith("molgen: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_atoms_with_a_toy_checkpoint_is_an_error(capsys, tmp_path):
    train(load_config(["progress=false", "steps=1", "task.hidden=8", "batch_size=8",
                       "eval_samples=8", "sampler.steps=2", f"out_dir={tmp_path}"]))
    code, _, err = run(capsys, "sample", "--checkpoint", tmp_path / CHECKPOINT, "--atoms", 9,
                       "-o", tmp_path / "x.png")
    assert code == 2 and "not molecules" in err
