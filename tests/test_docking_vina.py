"""The docking evaluation sets and the AutoDock Vina side (molgen.docking.complexes, .vina) and
the docking benchmark on one complex.  Skipped without vina/meeko or without the data."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from molgen.data.paths import default_data_root
from molgen.docking.complexes import (CASF_UNREADABLE, OVERLAP, ligand_box, load_complexes,
                                      read_box)
from molgen.docking.receptor import read_receptor

pytest.importorskip("vina")
pytest.importorskip("meeko")

ROOT = Path(__file__).resolve().parents[1]
COMPLEXES = default_data_root() / "complexes"
needs_data = pytest.mark.skipif(not (COMPLEXES / "astex_diverse").is_dir()
                                or not (COMPLEXES / "casf2016_core").is_dir(),
                                reason="docking sets absent (MOLGEN_DATA)")
SMALL = "1N2J_PAF"  # Astex's smallest ligand: 10 heavy atoms


@pytest.fixture(scope="module")
def astex():
    return {c.name: c for c in load_complexes("astex")}


@needs_data
def test_loaders_read_every_parsable_complex(astex):
    casf = load_complexes("casf2016")
    assert len(astex) == 85 and len(casf) == 284  # CASF: 285 less 4dli
    assert CASF_UNREADABLE[0] not in {c.name for c in casf}
    assert sorted({c.pdb_id for c in astex.values()} & {c.pdb_id for c in casf}) == list(OVERLAP)
    for c in [*astex.values(), *casf]:
        assert c.receptor_path.is_file()
        mol = c.ligand
        assert mol.GetNumConformers() == 1 and mol.GetConformer().Is3D()
        assert all(a.GetNumImplicitHs() == 0 for a in mol.GetAtoms())  # hydrogens explicit
        assert any(a.GetAtomicNum() == 1 for a in mol.GetAtoms())


@needs_data
def test_ligand_box_is_the_posebusters_box(astex):
    for name, c in astex.items():
        center, size = ligand_box(c.ligand)
        json_center, json_size = read_box(c.receptor_path.parent / f"{name}.json")
        np.testing.assert_allclose(center, json_center, atol=1e-4)
        np.testing.assert_allclose(size, json_size, atol=1e-4)


@needs_data
def test_receptor_preparation_types_metals_and_keeps_incomplete_residues():
    from molgen.docking.vina import prepare_receptor

    receptor = read_receptor(COMPLEXES / "casf2016_core" / "1ps3" / "1ps3_pocket.pdb")
    pdbqt = prepare_receptor(receptor)
    types = [line[77:79].strip() for line in pdbqt.splitlines() if line.startswith(("ATOM", "HETATM"))]
    assert "Zn" in types and "HD" in types and "OA" in types
    assert sum(t != "HD" for t in types) == len(receptor)  # every heavy atom is there


@needs_data
def test_vina_scores_docks_and_optimises_a_small_complex(astex):
    from molgen.docking.vina import prepare_ligand, prepare_receptor, vina_dock, vina_optimize, vina_score

    c = astex[SMALL]
    receptor = prepare_receptor(read_receptor(c.receptor_path))
    box = ligand_box(c.ligand)
    assert prepare_ligand(c.ligand).count("ATOM") >= c.ligand.GetNumHeavyAtoms()
    crystal_score = vina_score(receptor, c.ligand, box)
    assert math.isfinite(crystal_score) and crystal_score < 0
    optimised = vina_optimize(receptor, c.ligand, box)
    assert optimised.GetDoubleProp("vina_score") <= crystal_score + 1e-3
    poses = vina_dock(receptor, c.ligand, box, exhaustiveness=1, n_poses=5, seed=0)
    assert 1 <= len(poses) <= 5
    scores = [p.GetDoubleProp("vina_score") for p in poses]
    assert all(map(math.isfinite, scores)) and scores == sorted(scores)
    for pose in poses:  # copies of the ligand: same atoms in the same order, new coordinates
        assert pose.GetNumAtoms() == c.ligand.GetNumAtoms()
        assert [a.GetAtomicNum() for a in pose.GetAtoms()] == [a.GetAtomicNum() for a in c.ligand.GetAtoms()]
        xyz = pose.GetConformer().GetPositions()
        assert np.all(np.abs(xyz - box[0]) <= box[1] / 2 + 2.0)  # inside the box (H may poke out)
    again = vina_dock(receptor, c.ligand, box, exhaustiveness=1, n_poses=5, seed=0)
    assert [p.GetDoubleProp("vina_score") for p in again] == scores  # seeded


@needs_data
def test_one_scorer_rescores_many_poses_as_fresh_ones_would(astex):
    from molgen.docking.vina import VinaScorer, prepare_receptor, vina_dock, vina_score

    c = astex[SMALL]
    receptor = prepare_receptor(read_receptor(c.receptor_path))
    box = ligand_box(c.ligand)
    poses = vina_dock(receptor, c.ligand, box, exhaustiveness=1, n_poses=3, seed=1)
    scorer = VinaScorer(receptor, c.ligand, box)  # its maps serve every pose of the ligand
    for pose in poses:
        assert scorer.score(pose) == pytest.approx(vina_score(receptor, pose, box), abs=1e-3)
    vinardo = VinaScorer(receptor, c.ligand, box, scoring="vinardo")
    as_is = vinardo.score(c.ligand)
    optimised, energy = vinardo.optimize(c.ligand)
    assert math.isfinite(as_is) and energy <= as_is + 1e-3
    assert abs(as_is - vina_score(receptor, c.ligand, box)) > 0.1  # another function
    assert vinardo.score(optimised) == pytest.approx(energy, abs=0.05)
    with pytest.raises(ValueError, match="unknown Vina scoring function"):
        VinaScorer(receptor, c.ligand, box, scoring="ad4")


@needs_data
def test_benchmark_one_complex(tmp_path):
    out = tmp_path / "docking.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "docking.py"), "--sets",
                             "casf2016", "--limit", "1", "--methods", "vina1", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.read_text())
    s = summary["summary"]["casf2016"]["vina1"]
    assert s["n"] == 1 and s["failed"] == 0 and s["mean_cpu_s"] > 0
    rows = json.loads((tmp_path / "docking_complexes.json").read_text())["complexes"]
    (key, row), = rows.items()
    assert key.startswith("casf2016/") and key.endswith("/vina1")
    assert row["num_poses"] >= 1 and row["top1"] >= row["oracle"] >= 0
    assert isinstance(row["pb_valid"], bool) and isinstance(row["pb_failed"], list)
    assert out.with_suffix(".png").stat().st_size > 0


def test_mcnemar_and_paired_comparison():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import docking

    assert docking.mcnemar_exact(0, 0) == 1.0
    assert docking.mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert docking.mcnemar_exact(3, 3) == 1.0
    rows = {f"s/{n}/{m}": {"set": "s", "name": n, "method": m, "top1": r}
            for n, a, b in [("x", 1.0, 3.0), ("y", 1.0, 1.5), ("z", 4.0, 1.0), ("w", 3.0, 5.0)]
            for m, r in (("a", a), ("b", b))}
    rows["s/v/a"] = {"set": "s", "name": "v", "method": "a", "error": "failed"}
    rows["s/v/b"] = {"set": "s", "name": "v", "method": "b", "top1": 0.5}
    c = docking.compare(rows, "s", "a", "b")
    assert (c["n"], c["wins"], c["losses"], c["both"], c["neither"]) == (5, 1, 2, 1, 1)


@needs_data
def test_casf_validation_part_is_disjoint_from_the_reported_complexes_and_from_astex(astex):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import docking
    from rdkit import Chem

    casf = load_complexes("casf2016")
    test, valid = (docking.part("casf2016", casf, p, None) for p in ("test", "valid"))
    assert [c.name for c in test] == sorted(c.name for c in casf)[:docking.CASF_REPORTED] and len(valid) == 237
    assert not {c.name for c in test} & {c.name for c in valid}
    skeleton = {Chem.MolToInchiKey(c.ligand).split("-")[0] for c in astex.values()}
    assert not any(c.pdb_id in {a.pdb_id for a in astex.values()} for c in valid)
    assert not any(Chem.MolToInchiKey(c.ligand).split("-")[0] in skeleton for c in valid)
    assert docking.part("astex", list(astex.values()), "valid", None) == []
