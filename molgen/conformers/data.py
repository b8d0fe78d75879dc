"""Training molecules of the conformer model: PDB crystal ligands, benchmark molecules removed,
and optionally MOSES molecules with force-field conformers.

Crystal sets (`CRYSTAL_SETS`, chosen by the task's `crystal_sets`):
  good_density    the Open Force Field "good density" PDB ligands, 648 + 382 crystal conformers
                  with explicit H (`<MOLGEN_DATA>/conformers/pubLigs{Neutral,Charged}GoodDensity.sdf.gz`)
  pdbbind         3,048 crystal ligands of PDBbind complexes, heavy atoms only (hydrogens are
                  added with coordinates here)
  platinum_train  the train part of Platinum-dev's fixed split (`platinum_part`)
Molecules that also appear in an evaluation set are removed, matched by the connectivity block
of the InChIKey (so stereoisomers and protonation variants count as the same molecule): the
valid and test parts of Platinum-dev and the CASF-2016 and Astex docking sets.

Extra supervision (optional, `force_field_molecules`): drug-like MOSES training SMILES (the
PyPI package `molsets`, an extra) embedded with ETKDGv3 and minimized with MMFF94 — local
minima of a force field rather than experiment, but many more molecules than the crystals.
They are made once and cached as an SDF under $MOLGEN_CACHE/conformers.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import os
import random
from pathlib import Path
from typing import Sequence

from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem
from tqdm.auto import tqdm

from ..data.paths import default_cache_dir, default_data_root
from .featurize import ELEMENTS

PLATINUM = "conformers/platinum_diverse_2017_01_dev.sdf.gz"
CRYSTAL_SETS = {
    "good_density": ("conformers/pubLigsNeutralGoodDensity.sdf.gz",
                     "conformers/pubLigsChargedGoodDensity.sdf.gz"),
    "pdbbind": ("conformers/pdbbind_crystal_ligands.sdf.gz",),
    "platinum_train": (PLATINUM,),
}
DOCKING_SETS = ("complexes/casf2016_core/*/*_ligand.sdf", "complexes/astex_diverse/*/*_ligand.sdf")


def platinum_part(name: str) -> str:
    """train (60%), valid (20%) or test (20%): the fixed split of Platinum-dev, by the SHA-256
    of the ligand's name; the same name always lands in the same part."""
    bucket = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10
    return "train" if bucket < 6 else "valid" if bucket < 8 else "test"


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
    """Skeleton keys of every evaluation molecule: Platinum-dev's valid and test parts, and
    the docking sets."""
    keys = {skeleton_key(m) for m in read_sdf(root / PLATINUM)
            if platinum_part(m.GetProp("_Name")) != "train"}
    for pattern in DOCKING_SETS:
        for path in sorted(root.glob(pattern)):
            keys.update(skeleton_key(m) for m in read_sdf(path))
    return keys


def crystal_ligands(sets: Sequence[str] = tuple(CRYSTAL_SETS),
                    root: str | os.PathLike | None = None) -> list[Chem.Mol]:
    """The training ligands of the crystal `sets` (explicit H, crystal coordinates), in file
    order, evaluation molecules and unsupported elements removed."""
    root = Path(root) if root is not None else default_data_root()
    unknown = sorted(set(sets) - set(CRYSTAL_SETS))
    if unknown:
        raise ValueError(f"unknown crystal set(s) {', '.join(unknown)}; choose from {', '.join(CRYSTAL_SETS)}")
    paths = [root / name for name in {PLATINUM, *(f for s in sets for f in CRYSTAL_SETS[s])}]
    missing = sorted(str(p) for p in paths if not p.exists())
    if missing:  # Platinum is needed in any case: its valid and test parts are held out
        raise FileNotFoundError(f"conformer training data not found: {', '.join(missing)} "
                                f"(set MOLGEN_DATA)")
    held_out = held_out_keys(root)
    mols = []
    for name in sets:
        for path in CRYSTAL_SETS[name]:
            mols += [m for m in read_sdf(root / path)
                     if name != "platinum_train" or platinum_part(m.GetProp("_Name")) == "train"]
    # PDBbind's ligands have no H, a few good-density ones lack some: those are placed
    mols = [Chem.AddHs(m, addCoords=True) for m in mols]
    return [m for m in mols
            if skeleton_key(m) not in held_out
            and all(a.GetSymbol() in ELEMENTS for a in m.GetAtoms())]


def moses_smiles(n: int, seed: int) -> list[str]:
    """n SMILES drawn (fixed seed) from the MOSES training set that `molsets` ships."""
    spec = importlib.util.find_spec("moses")
    if spec is None:
        raise ModuleNotFoundError("MOSES SMILES need the molsets package: "
                                  "pip install --no-deps molsets==0.3.1")
    path = Path(spec.origin).parent / "dataset" / "data" / "train.csv.gz"
    with gzip.open(path, "rt") as f:
        smiles = [row["SMILES"] for row in csv.DictReader(f)]
    return random.Random(seed).sample(smiles, n)


def force_field_conformers(n: int, per_molecule: int, seed: int = 0,
                           root: str | os.PathLike | None = None) -> list[Chem.Mol]:
    """ETKDGv3 + MMFF94 conformers (one Mol per conformer, explicit H) of n MOSES molecules,
    benchmark molecules removed; cached in $MOLGEN_CACHE/conformers."""
    from .api import etkdg_params

    # v2: embedded with rdkit_seed(seed) (v1, randomSeed = seed + 1, trained the shipped model)
    cache = default_cache_dir() / "conformers" / f"moses_mmff_{n}x{per_molecule}_seed{seed}_v2.sdf"
    if not cache.exists():
        held_out = held_out_keys(Path(root) if root is not None else default_data_root())
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        with Chem.SDWriter(str(tmp)) as writer:
            for smiles in tqdm(moses_smiles(n, seed), desc="MMFF conformers", unit="mol"):
                mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
                if skeleton_key(mol) in held_out:
                    continue
                AllChem.EmbedMultipleConfs(mol, per_molecule, etkdg_params(seed))
                AllChem.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=2000)
                for conf in mol.GetConformers():
                    writer.write(mol, confId=conf.GetId())
        os.replace(tmp, cache)
    return read_sdf(cache)
