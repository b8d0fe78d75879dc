"""`molgen conformers`: SDF out, one line per failed molecule (exit 1), one-line usage errors
(exit 2).  The model is an untrained small TorsionNet standing in for the shipped one: these
tests are about the command, not the conformers' quality."""
import pytest
from rdkit import Chem

from molgen.conformers.api import ConformerModel
from molgen.conformers.model import TorsionNet
from molgen.diffusion.denoiser import graph_denoiser
from molgen.diffusion import SamplerConfig, make_schedule
from test_cli import run  # main(args) → (exit status, stdout, stderr)


@pytest.fixture
def loaded(monkeypatch) -> list:
    """ConformerModel.load gives the small model and records the paths it was asked for."""
    net, schedule = TorsionNet(hidden=8, layers=1, rbf=4), make_schedule("cosine")
    model = ConformerModel(lambda space: graph_denoiser(net, schedule, space, "v"),
                           SamplerConfig(kind="ddim", steps=2), max_atoms=40)
    paths = []
    monkeypatch.setattr(ConformerModel, "load",
                        classmethod(lambda cls, path=None: paths.append(path) or model))
    return paths


def molgen_lines(err: str) -> list[str]:
    """stderr without the progress bar."""
    return [line for line in err.replace("\r", "\n").splitlines() if line.startswith("molgen:")]


def test_help(capsys):
    code, out, _ = run(capsys, "conformers", "--help")
    assert code == 0 and out.startswith("usage: molgen conformers")


def test_writes_one_record_per_conformer(capsys, tmp_path, loaded):
    sdf = tmp_path / "out.sdf"
    code, out, err = run(capsys, "conformers", "CC(=O)NCCO", "-n", 3, "--relax", "mmff",
                         "--seed", 1, "-o", sdf)
    assert code == 0, err
    assert out.startswith("conformers: 1 molecules, 3 conformers in ") and str(sdf) in out
    records = list(Chem.SDMolSupplier(str(sdf), removeHs=False))
    assert [r.GetProp("_Name") for r in records] == ["CC(=O)NCCO"] * 3
    assert [r.GetIntProp("conformer") for r in records] == [0, 1, 2]
    energies = [r.GetDoubleProp("energy") for r in records]
    assert energies == sorted(energies)
    assert all(r.GetNumAtoms() == 16 and r.GetConformer().Is3D() for r in records)
    assert loaded == [None] and molgen_lines(err) == []


def test_failed_molecules_are_reported_and_the_others_written(capsys, tmp_path, loaded):
    smi = tmp_path / "in.smi"
    smi.write_text("CCCCO butanol\nC[Si](C)C silane\nCCCCCCCCCCCCCC too_big\nC1CC broken\n")
    sdf = tmp_path / "out.sdf"
    code, out, err = run(capsys, "conformers", smi, "-n", 2, "-o", sdf,
                         "--checkpoint", "my.pt")
    assert code == 1
    lines = molgen_lines(err)
    assert [line.split(":")[1].strip() for line in lines] == ["silane", "too_big", "broken"]
    assert "unsupported element(s) Si" in lines[0] and "limit of 40" in lines[1]
    assert "invalid SMILES 'C1CC'" in lines[2]
    assert [r.GetProp("_Name") for r in Chem.SDMolSupplier(str(sdf))] == ["butanol"] * 2
    assert "1 molecules (3 failed), 2 conformers" in out and loaded == ["my.pt"]
    smi.write_text("C1CC broken\n")  # every molecule failing: no file
    sdf.unlink()
    code, out, err = run(capsys, "conformers", smi, "-n", 2, "-o", sdf)
    assert code == 1 and len(molgen_lines(err)) == 1 and not sdf.exists()
    assert "0 molecules (1 failed), 0 conformers" in out and "nothing written" in out


@pytest.mark.parametrize("args, message", [
    (["no/such.smi"], "no such file: no/such.smi"),
    ([" "], "empty input: give a SMILES or a"),
    (["{empty}"], "no molecules in"),
    (["C1CC"], "invalid SMILES 'C1CC'"),
    (["CCO", "-n", "0"], "-n must be in 1..10000"),
    (["CCO", "--relax", "amber"], "invalid choice: 'amber'"),
    (["CCO", "--sampler", "nope"], "unknown sampler 'nope'"),
    (["CCO", "--steps", "0"], "steps must be >= 1"),
    (["CCO", "--prune", "-1"], "--prune must be a number >= 0"),
    (["CCO", "--prune", "nan"], "--prune must be a number >= 0"),
    (["CCO", "--seed", "-1"], "seed must be an integer in 0..4294967295"),
    (["CCO", "--threads", "0"], "--threads must be >= 1"),
    (["CCO", "--oversample", "0"], "oversample must be an integer >= 1"),
    (["CCO", "-o", "no/dir/out.sdf"], "-o no/dir/out.sdf: folder"),
    (["CCO", "-o", "out.xyz"], "its name must end in .sdf or .sdf.gz"),
])
def test_usage_errors_are_one_line_with_status_2(capsys, tmp_path, loaded, args, message):
    empty = tmp_path / "empty.smi"
    empty.write_text("# no molecules\n")
    code, out, err = run(capsys, "conformers", *(a.format(empty=empty) for a in args),
                         *([] if "-o" in args else ["-o", tmp_path / "out.sdf"]))
    assert code == 2
    assert err.startswith("molgen: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out.sdf").exists()


def test_missing_checkpoint_is_a_usage_error(capsys, tmp_path):
    code, _, err = run(capsys, "conformers", "CCO", "--checkpoint", "no/such.pt",
                       "-o", tmp_path / "out.sdf")
    assert code == 2 and err.startswith("molgen: error: ") and "no/such.pt" in err
