"""Receptors: the protein atoms a ligand is docked into, read from PDB or mmCIF files.

A receptor is its heavy atoms: standard amino acids (common modified residues read as their
parent, keeping only the parent's atoms: MSE's selenium becomes MET's SD), and the metal ions
that sit in binding sites (the zinc of a metalloprotease is part of the pocket).  Hydrogens,
waters and every other hetero group (cofactors, sugars, buffer molecules, other ligands) are
left out and listed in `dropped`, so a caller can say what the docking did not see.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.proteins import AMINO_ACIDS, parse_structure

METALS = ("ZN", "MG", "CA", "MN", "FE", "FE2", "CO", "NI", "CU", "CU1", "NA", "K", "CD", "HG")
"""Residue names of single-atom ions kept as part of the receptor."""
MODIFIED = {"MSE": "MET", "CSO": "CYS", "CSD": "CYS", "CME": "CYS", "CAS": "CYS", "OCS": "CYS",
            "CSS": "CYS", "SEP": "SER", "TPO": "THR", "PTR": "TYR", "HYP": "PRO", "MLY": "LYS",
            "KCX": "LYS", "LLP": "LYS", "SEC": "CYS"}
"""Modified residues read as their parent amino acid (the parent's atoms only)."""
RESIDUE_ATOMS = {
    "ALA": "N CA C O CB", "ARG": "N CA C O CB CG CD NE CZ NH1 NH2", "ASN": "N CA C O CB CG OD1 ND2",
    "ASP": "N CA C O CB CG OD1 OD2", "CYS": "N CA C O CB SG", "GLN": "N CA C O CB CG CD OE1 NE2",
    "GLU": "N CA C O CB CG CD OE1 OE2", "GLY": "N CA C O", "HIS": "N CA C O CB CG ND1 CD2 CE1 NE2",
    "ILE": "N CA C O CB CG1 CG2 CD1", "LEU": "N CA C O CB CG CD1 CD2",
    "LYS": "N CA C O CB CG CD CE NZ", "MET": "N CA C O CB CG SD CE",
    "PHE": "N CA C O CB CG CD1 CD2 CE1 CE2 CZ", "PRO": "N CA C O CB CG CD", "SER": "N CA C O CB OG",
    "THR": "N CA C O CB OG1 CG2", "TRP": "N CA C O CB CG CD1 CD2 NE1 CE2 CE3 CZ2 CZ3 CH2",
    "TYR": "N CA C O CB CG CD1 CD2 CE1 CE2 CZ OH", "VAL": "N CA C O CB CG1 CG2"}
"""Heavy atoms of the standard amino acids (OXT, the C-terminal oxygen, is kept too)."""
RESIDUE_ATOMS = {k: frozenset(v.split()) | {"OXT"} for k, v in RESIDUE_ATOMS.items()}
assert set(RESIDUE_ATOMS) == set(AMINO_ACIDS)


class DockingInputError(ValueError):
    """A receptor, ligand or box that cannot be docked; the message is one line."""


@dataclass
class Receptor:
    """Heavy atoms [N] of a receptor: positions pos [N, 3] (Å), element symbols ('C', 'Zn'),
    PDB atom names, residue names (parents for modified residues, the ion's name for
    metals), residue_id [N] (one number per residue, in file order) and chain IDs; `dropped`
    names the hetero groups left out, with their counts."""

    name: str
    pos: np.ndarray
    element: list[str]
    atom_name: list[str]
    residue: list[str]
    residue_id: np.ndarray
    chain: list[str]
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pos)

    def select(self, mask: np.ndarray) -> "Receptor":
        idx = np.flatnonzero(mask)
        pick = lambda seq: [seq[i] for i in idx]  # noqa: E731
        return Receptor(self.name, self.pos[idx], pick(self.element), pick(self.atom_name),
                        pick(self.residue), self.residue_id[idx], pick(self.chain), dict(self.dropped))

    def near(self, points: np.ndarray, radius: float) -> "Receptor":
        """The atoms within `radius` Å of any of points [M, 3]."""
        d = np.linalg.norm(self.pos[:, None] - np.asarray(points, dtype=float).reshape(-1, 3)[None], axis=-1)
        return self.select(d.min(1) <= radius)

    def to_pdb(self) -> str:
        """The receptor as PDB text (ATOM records for residues, HETATM for ions, an END)."""
        lines = []
        for i, (p, el, name, res, rid, ch) in enumerate(zip(self.pos, self.element, self.atom_name,
                                                             self.residue, self.residue_id, self.chain)):
            record = "ATOM  " if res in RESIDUE_ATOMS else "HETATM"
            label = f" {name:<3}" if len(name) < 4 and len(el) == 1 else f"{name:<4}"
            lines.append(f"{record}{i + 1:5d} {label} {res:>3} {ch[:1] or 'A'}{int(rid) % 10000:4d}    "
                         f"{p[0]:8.3f}{p[1]:8.3f}{p[2]:8.3f}  1.00  0.00          {el.upper():>2}")
        return "\n".join(lines + ["END", ""])


def read_receptor(path: str | Path) -> Receptor:
    """The receptor in a PDB or mmCIF file (first model; see the module docstring);
    DockingInputError if the file is missing, unreadable or holds no amino-acid atoms."""
    path = Path(path)
    if not path.is_file():
        raise DockingInputError(f"{path}: no such receptor file")
    structure = parse_structure(path, path.name, "cif" if ".cif" in path.name.lower() else "pdb",
                                error=DockingInputError)
    model = next(iter(structure), None)
    if model is None:
        raise DockingInputError(f"{path.name}: no atom records (not a PDB/mmCIF receptor?)")
    pos, element, atom_name, residue, residue_id, chain, dropped = [], [], [], [], [], [], {}
    for number, res in enumerate(r for ch in model for r in ch):
        name = res.get_resname().strip()
        parent = MODIFIED.get(name, name)
        if parent in RESIDUE_ATOMS:
            kept = [(a, a.get_id()) for a in res]
            if name == "MSE":  # selenomethionine: SE stands where MET's SD does
                kept = [(a, "SD" if a.get_id() == "SE" else a.get_id()) for a, _ in kept]
            kept = [(a, n, "S" if n == "SD" and name == "MSE" else a.element.capitalize())
                    for a, n in kept if n in RESIDUE_ATOMS[parent]]
        elif name in METALS:
            kept = [(a, a.get_id(), a.element.capitalize()) for a in res]
        else:
            if name not in ("HOH", "WAT", "DOD"):
                dropped[name] = dropped.get(name, 0) + 1
            continue
        for atom, atom_id, el in kept:
            if el in ("H", "D"):
                continue
            pos.append(atom.get_coord())
            element.append(el)
            atom_name.append(atom_id)
            residue.append(parent)
            residue_id.append(number)
            chain.append(res.get_parent().id)
    if not any(r in RESIDUE_ATOMS for r in residue):
        raise DockingInputError(f"{path.name}: no protein atoms (no standard or common modified "
                                "amino-acid residue)")
    return Receptor(path.stem, np.asarray(pos, dtype=np.float64).reshape(-1, 3), element, atom_name,
                    residue, np.asarray(residue_id), chain, dropped)
