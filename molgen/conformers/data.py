"""Training molecules of the conformer model: PDB crystal ligands, benchmark molecules removed.

The training set is the Open Force Field "good density" PDB ligands
(`<MOLGEN_DATA>/conformers/pubLigs{Neutral,Charged}GoodDensity.sdf.gz`, 648 + 382 crystal
conformers with explicit H).  Molecules that also appear in an evaluation set are removed,
matched by the connectivity block of the InChIKey (so stereoisomers and protonation
variants count as the same molecule): the Platinum conformer benchmark and the CASF-2016 and
Astex docking sets.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

from rdkit import Chem, RDLogger

from ..qm9 import default_data_root
from .featurize import ELEMENTS

TRAINING_FILES = ("conformers/pubLigsNeutralGoodDensity.sdf.gz",
                  "conformers/pubLigsChargedGoodDensity.sdf.gz")
PLATINUM = "conformers/platinum_diverse_2017_01_dev.sdf.gz"
HELD_OUT_GLOBS = (PLATINUM, "complexes/casf2016_core/*/*_ligand.sdf",
                  "complexes/astex_diverse/*/*_ligand.sdf")


def read_sdf(path: str | os.PathLike, remove_hs: bool = False) -> list[Chem.Mol]:
    """The molecules of an .sdf or .sdf.gz file that RDKit parses (others are skipped)."""
    RDLogger.DisableLog("rdApp.*")
    try:
        with (gzip.open(path) if str(path).endswith(".gz") else open(path, "rb")) as f:
            return [m for m in Chem.ForwardSDMolSupplier(f, removeHs=remove_hs) if m is not None]
    finally:
        RDLogger.EnableLog("rdApp.*")


def skeleton_key(mol: Chem.Mol) -> str:
    """The InChIKey's connectivity block: the same for stereoisomers and protonation states."""
    return Chem.MolToInchiKey(mol).split("-")[0]


def held_out_keys(root: Path) -> set[str]:
    keys = set()
    for pattern in HELD_OUT_GLOBS:
        for path in sorted(root.glob(pattern)):
            keys.update(skeleton_key(m) for m in read_sdf(path))
    return keys


def crystal_ligands(root: str | os.PathLike | None = None) -> list[Chem.Mol]:
    """The training ligands (explicit H, crystal coordinates), in file order."""
    root = Path(root) if root is not None else default_data_root()
    paths = [root / name for name in TRAINING_FILES]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"conformer training data not found: {', '.join(missing)} "
                                f"(set MOLGEN_DATA)")
    if not (root / PLATINUM).exists():
        raise FileNotFoundError(f"{root / PLATINUM} is needed to hold the benchmark molecules "
                                f"out of training (set MOLGEN_DATA)")
    held_out = held_out_keys(root)
    mols = [m for p in paths for m in read_sdf(p)]
    return [m for m in mols
            if skeleton_key(m) not in held_out
            and all(a.GetSymbol() in ELEMENTS for a in m.GetAtoms())]
