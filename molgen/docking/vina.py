"""AutoDock Vina side by side: receptor and ligand preparation, docking, scoring, local optimisation.

The classical baseline that `molgen dock` is compared with (benchmarks/docking.py).  Needs the
optional extra ``docking`` (``vina``, ``meeko``; meeko 0.8 imports ``gemmi``); they are imported
inside the functions, so ``molgen`` imports without them.

* Receptors (`prepare_receptor`) are typed by meeko from `Receptor.to_pdb()`: standard
  residues only (molgen.docking.receptor already maps modified residues to their parents and
  drops other hetero groups; meeko cannot download templates offline).  Metal ions are not
  passed to meeko (it has templates for some and not others) but written by this module as
  PDBQT atoms whose AutoDock type is the element (``Zn``, ``Mg``, ``Ca``, ``Mn``, ``Fe``,
  ``Cu``, ``Co``, ``Ni``, ``Na``, ``K``, ``Cd``, ``Hg``): Vina types them all as metal donors
  (``Met_D``).  A residue meeko cannot match to a template (crystal structures often lack
  the atoms of disordered side chains) is not dropped: its atoms are typed by name
  (`_ad_type`: aromatic ring carbons A, other carbons C, oxygens OA, sulfurs SA, HIS ND1 NA,
  other nitrogens N) without hydrogens, so its N–H and O–H groups are not H-bond donors to
  Vina; a warning names these residues.
* Ligands (`prepare_ligand`) are typed by meeko's `MoleculePreparation` with its defaults
  (non-polar hydrogens merged, amide bonds rigid, macrocycles opened with glue pseudo-atoms).
* A box is ``(center[3], size[3])`` in Å (molgen.docking.complexes.ligand_box); Vina's grid
  maps are computed on it at the default 0.375 Å spacing.

Every Vina object uses one CPU thread (``cpu=1``) and the 'vina' scoring function, except
`VinaScorer`'s for rescoring with 'vinardo'.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence

import numpy as np
from rdkit import Chem

from .receptor import METALS, DockingInputError, Receptor

Box = tuple[Sequence[float], Sequence[float]]
"""(center [x, y, z], size [x, y, z]) in Å."""


def _import():
    try:
        import meeko
        import vina
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("AutoDock Vina docking needs the optional extra 'docking' "
                          f"(pip install 'molgen[docking]'): {exc}") from None
    return meeko, vina


def prepare_receptor(receptor: Receptor) -> str:
    """The receptor as rigid PDBQT text (meeko's Vina/AD4 typing and Gasteiger-like template
    charges; metal ions appended as element-typed atoms).  See the module docstring for what
    is left out; DockingInputError when meeko types no residue at all."""
    meeko, _ = _import()
    is_metal = np.array([res in METALS for res in receptor.residue], dtype=bool)
    protein = receptor.select(~is_metal)
    templates = meeko.ResidueChemTemplates.create_from_defaults()
    pdb = protein.to_pdb()
    with _quiet():
        polymer = meeko.Polymer.from_pdb_string(pdb, templates, meeko.MoleculePreparation(),
                                                allow_bad_res=True)
        rigid, _flex = meeko.PDBQTWriterLegacy.write_from_polymer(polymer)
    lines = [ln for ln in rigid.splitlines() if ln.startswith(("ATOM", "HETATM"))]
    ignored = set(polymer.get_ignored_monomers())
    if ignored:  # residues with missing atoms: typed by atom name, without hydrogens
        for ln in pdb.splitlines():
            if ln.startswith(("ATOM", "HETATM")) and f"{ln[21]}:{int(ln[22:26])}" in ignored:
                lines.append(f"{ln[:66]}    {0.0:+6.3f} {_ad_type(ln[17:20], ln[12:16].strip()):<2}")
        warnings.warn(f"{receptor.name}: {len(ignored)} residue(s) meeko could not match to a "
                      "template (missing atoms) typed by atom name, without polar H: "
                      f"{', '.join(sorted(ignored)[:8])}{' ...' if len(ignored) > 8 else ''}",
                      stacklevel=2)
    if not lines:
        raise DockingInputError(f"{receptor.name}: meeko typed no receptor residue")
    serial = len(lines)
    for i in np.flatnonzero(is_metal):
        serial += 1
        el = receptor.element[i].capitalize()
        x, y, z = receptor.pos[i]
        lines.append(f"HETATM{serial % 100000:5d} {el.upper():<4} {receptor.residue[i]:>3} "
                     f"{receptor.chain[i][:1] or 'A'}{int(receptor.residue_id[i]) % 10000:4d}    "
                     f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00    {0.0:+6.3f} {el:<2}")
    return "\n".join(lines) + "\n"


def prepare_ligand(mol: Chem.Mol) -> str:
    """The ligand as PDBQT text with its torsion tree (meeko's MoleculePreparation defaults)
    from an RDKit molecule with explicit hydrogens and a 3-D conformer (its coordinates are
    the pose).  DockingInputError for a molecule without H or coordinates, of several
    fragments, or one meeko cannot type."""
    meeko, _ = _import()
    if mol.GetNumConformers() == 0 or not mol.GetConformer().Is3D():
        raise DockingInputError("ligand has no 3-D conformer")
    if mol.GetNumAtoms() > 1 and not any(a.GetAtomicNum() == 1 for a in mol.GetAtoms()):
        raise DockingInputError("ligand has no explicit hydrogens (Chem.AddHs(addCoords=True))")
    if len(Chem.GetMolFrags(mol)) != 1:
        raise DockingInputError("ligand has several fragments")
    with _quiet():
        setups = meeko.MoleculePreparation().prepare(mol)
        pdbqt, ok, error = meeko.PDBQTWriterLegacy.write_string(setups[0])
    if not ok:
        raise DockingInputError(f"meeko could not write the ligand: {' '.join(error.split())[:200]}")
    return pdbqt


def vina_dock(receptor_pdbqt: str, mol: Chem.Mol, box: Box, *, exhaustiveness: int = 8,
              n_poses: int = 9, seed: int = 0) -> list[Chem.Mol]:
    """Dock mol (explicit H, a 3-D start conformer, whose torsions and position Vina
    randomises) into the box: up to n_poses poses, best first, each a copy of mol (same atoms
    and order, hydrogens placed by meeko from Vina's heavy atoms and polar H) with one
    conformer and the SD property ``vina_score`` (kcal/mol, Vina's total as in `vina_score`).
    Vina's defaults otherwise: poses at least 1 Å RMSD apart within 3 kcal/mol of the best.
    Reproducible: seed s is Vina's seed s + 1 (Vina draws a random seed for 0)."""
    if seed < 0:
        raise ValueError("seed must be >= 0")
    v = _vina(receptor_pdbqt, mol, box, seed=seed + 1)
    with _quiet():
        v.dock(exhaustiveness=exhaustiveness, n_poses=max(n_poses, 20))
        energies = v.energies(n_poses=n_poses)
        poses = _poses_to_mols(v.poses(n_poses=n_poses), mol)
    for pose, e in zip(poses, energies):
        pose.SetDoubleProp("vina_score", float(e[0]))
    return poses[:len(energies)]


def vina_score(receptor_pdbqt: str, mol: Chem.Mol, box: Box) -> float:
    """Vina's score (kcal/mol) of mol's pose as it is, without optimisation.

    This is the total Vina's ``score()`` reports (Vina 1.2, 'vina' function): the
    intermolecular ligand-receptor energy (gauss1, gauss2, repulsion, hydrophobic, H-bond
    terms, weights -0.0356, -0.00516, 0.840, -0.0351, -0.587, 8 Å cut-off, interpolated from
    the grid maps of the box) plus the ligand's intramolecular energy, minus the unbound
    ligand's intramolecular energy, which Vina takes to be that of the same pose when scoring
    only, so the two cancel; the result is divided by 1 + 0.0585·N_rot.  So effectively:
    total = inter / (1 + 0.0585·N_rot), Vina's columns [0] = [1] + [6] of ``Vina.score()``.
    N_rot is Vina's count: ½ Σ over the ligand's heavy atoms of their rotatable bonds (of
    meeko's torsion tree) to heavy atoms that have more than one heavy neighbour, so a rotor
    to a terminal group (C–NH2, C–OH) counts ½.
    Atoms outside the box add Vina's out-of-grid penalty."""
    return VinaScorer(receptor_pdbqt, mol, box).score(mol)


def vina_optimize(receptor_pdbqt: str, mol: Chem.Mol, box: Box, *, max_steps: int = 0
                  ) -> Chem.Mol:
    """Vina's local optimisation (BFGS over position, orientation and torsions) of mol's pose:
    a copy of mol with the optimised coordinates and ``vina_score`` (as in `vina_score`, of
    the optimised pose).  max_steps 0: Vina's default, (25 + movable atoms) / 3."""
    pose, energy = VinaScorer(receptor_pdbqt, mol, box).optimize(mol, max_steps=max_steps)
    pose.SetDoubleProp("vina_score", energy)
    return pose


class VinaScorer:
    """Many poses of one ligand scored or locally optimised by one Vina object, whose grid
    maps of the box are computed once (~1 s) rather than per pose (a score then costs ~3 ms,
    an optimisation ~0.1 s for 25 heavy atoms).  scoring: Vina's 'vina' or 'vinardo'
    function (Quiroga & Villarreal 2016: Vina's terms with other atom radii and weights)."""

    def __init__(self, receptor_pdbqt: str, ligand: Chem.Mol, box: Box, *, scoring: str = "vina"):
        if scoring not in ("vina", "vinardo"):
            raise ValueError(f"unknown Vina scoring function {scoring!r}; choose 'vina' or 'vinardo'")
        self._vina = _vina(receptor_pdbqt, ligand, box, scoring=scoring)

    def score(self, pose: Chem.Mol) -> float:
        """The function's total (kcal/mol) of pose as it is (see `vina_score`)."""
        with _quiet():
            self._vina.set_ligand_from_string(prepare_ligand(pose))
            return float(self._vina.score()[0])

    def optimize(self, pose: Chem.Mol, *, max_steps: int = 0) -> tuple[Chem.Mol, float]:
        """A copy of pose locally optimised on the function (see `vina_optimize`) and its
        total (kcal/mol) after optimisation."""
        with _quiet():
            self._vina.set_ligand_from_string(prepare_ligand(pose))
            self._vina.optimize(max_steps=max_steps)
            pdbqt = _write_pose(self._vina)
            energy = float(self._vina.score()[0])
        return _poses_to_mols(pdbqt, pose)[0], energy


# --------------------------------------------------------------------------- internals

_AROMATIC = {"PHE": "CG CD1 CD2 CE1 CE2 CZ", "TYR": "CG CD1 CD2 CE1 CE2 CZ",
             "TRP": "CG CD1 CD2 CE2 CE3 CZ2 CZ3 CH2", "HIS": "CG CD2 CE1"}
_AROMATIC = {k: set(v.split()) for k, v in _AROMATIC.items()}


def _ad_type(residue: str, atom: str) -> str:
    """AutoDock type of a standard residue's heavy atom by name (for residues meeko skips)."""
    element = atom[0]
    if element == "C":
        return "A" if atom in _AROMATIC.get(residue, ()) else "C"
    if element == "O":
        return "OA"
    if element == "S":
        return "SA"
    if element == "N":
        return "NA" if (residue, atom) == ("HIS", "ND1") else "N"
    return element

def _vina(receptor_pdbqt: str, mol: Chem.Mol, box: Box, seed: int = 0, scoring: str = "vina"):
    """A one-thread Vina object with the receptor, the ligand and the box's grid maps."""
    _, vina = _import()
    center, size = (np.asarray(x, dtype=float).reshape(3) for x in box)
    if not np.all(np.isfinite(center)) or not np.all(size > 0):
        raise DockingInputError(f"bad box: center {center}, size {size}")
    ligand = prepare_ligand(mol)
    v = vina.Vina(sf_name=scoring, cpu=1, seed=int(seed), verbosity=0)
    with tempfile.NamedTemporaryFile("w", suffix=".pdbqt", delete=False) as f:
        f.write(receptor_pdbqt)
    try:
        with _quiet():
            v.set_receptor(f.name)
    finally:
        os.unlink(f.name)
    with _quiet():
        v.set_ligand_from_string(ligand)
        v.compute_vina_maps(center=center.tolist(), box_size=size.tolist())
    return v


def _write_pose(v) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".pdbqt", delete=False) as f:
        name = f.name
    try:
        v.write_pose(name, overwrite=True)
        with open(name) as f:
            return f.read()
    finally:
        os.unlink(name)


def _poses_to_mols(pdbqt: str, mol: Chem.Mol) -> list[Chem.Mol]:
    """Copies of mol with the coordinates of each pose of Vina's PDBQT output (meeko rebuilds
    the molecule with all H; its atoms are matched to mol's by graph)."""
    meeko, _ = _import()
    with _quiet():
        pdbqt_mol = meeko.PDBQTMolecule(pdbqt, is_dlg=False, skip_typing=True)
        built = meeko.RDKitMolCreate.from_pdbqt_mol(pdbqt_mol)[0]
    match = built.GetSubstructMatch(mol, useChirality=False)
    if len(match) != mol.GetNumAtoms() or built.GetNumAtoms() != mol.GetNumAtoms():
        match = _graph_match(built, mol)
    poses = []
    for conf in built.GetConformers():
        xyz = conf.GetPositions()[list(match)]
        pose = Chem.Mol(mol)
        pose.RemoveAllConformers()
        c = Chem.Conformer(mol.GetNumAtoms())
        for i, p in enumerate(xyz):
            c.SetAtomPosition(i, p.tolist())
        c.Set3D(True)
        pose.AddConformer(c, assignId=True)
        poses.append(pose)
    return poses


def _graph_match(built: Chem.Mol, mol: Chem.Mol) -> tuple[int, ...]:
    """Atom map mol → built by element and connectivity only (bond orders and charges as
    meeko rebuilt them may differ from the input's, e.g. for some charged groups)."""
    def plain(m):
        rw = Chem.RWMol(m)
        for a in rw.GetAtoms():
            a.SetFormalCharge(0)
            a.SetIsAromatic(False)
            a.SetNoImplicit(True)
            a.SetNumExplicitHs(0)
        for b in rw.GetBonds():
            b.SetBondType(Chem.BondType.SINGLE)
            b.SetIsAromatic(False)
        return rw.GetMol()
    match = plain(built).GetSubstructMatch(plain(mol), useChirality=False)
    if len(match) != mol.GetNumAtoms():
        raise DockingInputError("Vina's pose does not match the input ligand's atoms")
    return match


class _quiet:
    """Silence RDKit's and meeko's logging while meeko and Vina work."""

    def __enter__(self):
        import logging
        from rdkit import RDLogger
        RDLogger.DisableLog("rdApp.*")
        self._level = logging.getLogger("meeko").level
        logging.getLogger("meeko").setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        import logging
        from rdkit import RDLogger
        RDLogger.EnableLog("rdApp.*")
        logging.getLogger("meeko").setLevel(self._level)
        return False
