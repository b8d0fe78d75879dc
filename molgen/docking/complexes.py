"""The docking evaluation sets, read in place from the shared data folder.

* ``casf2016``: the CASF-2016 core set, ``complexes/casf2016_core/<id>/``: the pocket
  (``<id>_pocket.pdb``, residues near the ligand, as PDBbind cut it) and the crystal ligand
  (``<id>_ligand.sdf``, else ``<id>_ligand.mol2`` where RDKit cannot read the SD file:
  251 + 33 complexes).  Of the 285, ``4dli`` is skipped: RDKit parses neither of its ligand
  files.  So 284 complexes.
* ``astex``: the Astex diverse set in the PoseBusters layout,
  ``complexes/astex_diverse/<ID>_<LIG>/``: the whole protein (``_protein.pdb``), the crystal
  ligand (``_ligand.sdf``) and the PoseBusters docking box (``.json``).  85 complexes.

Four complexes are in both sets (`OVERLAP`).  The receptor is given as a path (read it with
molgen.docking.receptor.read_receptor); the crystal ligand as an RDKit molecule with explicit
hydrogens and its crystal coordinates (hydrogens added with coordinates where the file has
none, as in the Astex SD files).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rdkit import Chem, RDLogger

from ..data.paths import default_data_root

SETS = ("casf2016", "astex")
OVERLAP = ("1gpk", "1oyt", "1z95", "2br1")
"""PDB IDs of the complexes in both CASF-2016 core and Astex diverse."""
CASF_UNREADABLE = ("4dli",)
"""CASF-2016 core complexes whose ligand neither the SD nor the mol2 file gives."""
BOX_PADDING = 10.0
"""Å added to the crystal ligand's extent along each axis (PoseBusters' docking box)."""


@dataclass
class Complex:
    """One protein-ligand complex: its name (CASF: the lower-case PDB ID; Astex:
    ``<ID>_<LIG>``), its set, the receptor file and the crystal ligand (RDKit, explicit H,
    one conformer: the crystal pose)."""

    name: str
    set: str
    receptor_path: Path
    ligand: Chem.Mol

    @property
    def pdb_id(self) -> str:
        return self.name[:4].lower()


def load_complexes(name: str, root: str | Path | None = None) -> list[Complex]:
    """The complexes of set `name` ("casf2016" or "astex"), sorted by name; `root`: the data
    folder (default molgen.data.paths.default_data_root()).  FileNotFoundError when the set's
    folder is absent."""
    if name not in SETS:
        raise ValueError(f"unknown docking set {name!r}; choose from {', '.join(SETS)}")
    root = Path(root) if root is not None else default_data_root()
    folder = root / "complexes" / ("casf2016_core" if name == "casf2016" else "astex_diverse")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such data folder")
    out = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        if name == "casf2016":
            receptor, ligand_files = d / f"{d.name}_pocket.pdb", [d / f"{d.name}_ligand.sdf",
                                                                 d / f"{d.name}_ligand.mol2"]
        else:
            receptor, ligand_files = d / f"{d.name}_protein.pdb", [d / f"{d.name}_ligand.sdf"]
        if not receptor.is_file():  # e.g. CASF's index/ folder
            continue
        mol = next((m for m in map(_read_ligand, ligand_files) if m is not None), None)
        if mol is None:
            continue  # 4dli (CASF_UNREADABLE)
        out.append(Complex(d.name, name, receptor, mol))
    return out


def ligand_box(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray]:
    """The docking box around a (crystal) ligand as PoseBusters defines it: center = the
    centroid of its heavy atoms, size = their extent along x, y, z plus 10 Å.  On the 85
    Astex complexes it equals the boxes in the PoseBusters ``.json`` files to within
    2·10⁻⁵ Å (their float32 rounding) in center and size."""
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    xyz = mol.GetConformer().GetPositions()[heavy]
    return xyz.mean(axis=0), np.ptp(xyz, axis=0) + BOX_PADDING


def read_box(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A box from a PoseBusters/Vina JSON file (center_x ... size_z)."""
    b = json.loads(Path(path).read_text())
    return (np.array([b[f"center_{k}"] for k in "xyz"], dtype=float),
            np.array([b[f"size_{k}"] for k in "xyz"], dtype=float))


def _read_ligand(path: Path) -> Chem.Mol | None:
    """A ligand from an SD or mol2 file with explicit H and coordinates; None when RDKit
    cannot read it."""
    if not path.is_file():
        return None
    RDLogger.DisableLog("rdApp.*")
    try:
        if path.suffix == ".mol2":
            mol = Chem.MolFromMol2File(str(path), removeHs=False)
        else:
            mol = Chem.MolFromMolFile(str(path), removeHs=False)
    except OSError:
        mol = None
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None or mol.GetNumConformers() == 0:
        return None
    if not any(a.GetAtomicNum() == 1 for a in mol.GetAtoms()) or any(
            a.GetNumImplicitHs() for a in mol.GetAtoms()):
        mol = Chem.AddHs(mol, addCoords=True)
    mol.SetProp("_Name", path.name.split("_ligand")[0])
    return mol
