"""What a docking model is given: ligand local structures and the pocket around a box centre.

Shared by training (molgen.docking.task: crystal poses of synthetic and real complexes) and
docking (molgen.docking.api), so the model meets the same inputs in both.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import AllChem
from torch import Tensor

from ..conformers.api import embed
from ..conformers.featurize import molecule_graph
from ..conformers.model import Conformer
from ..conformers.postprocess import relax
from ..conformers.torsions import TorsionBatch, dihedrals
from .model import pocket_features
from .pose import Pocket, canonical_frame
from .receptor import Receptor

POCKET_RADIUS = 16.0
"""Å: receptor atoms this close to the box centre make the pocket the model sees."""


def pocket_of(receptor: Receptor, centre: Tensor, radius: float = POCKET_RADIUS) -> Pocket:
    """The receptor atoms within `radius` Å of centre [3], as the model reads them."""
    near = receptor.near(np.asarray(centre, dtype=np.float64), radius)
    return Pocket(torch.as_tensor(near.pos, dtype=torch.float32), pocket_features(near))


def local_structures(mol: Chem.Mol, num: int, seed: int, *, forcefield: str | None = None) -> list[Conformer]:
    """Up to `num` ETKDGv3 local structures of mol (explicit H), each in its canonical frame;
    with forcefield ("mmff" or "uff"), each minimised with it first (MMFF falls back to UFF
    for molecules it has no parameters for): ETKDG's bond angles and ring puckers are only
    approximate, and a docking search keeps them as they are."""
    graph = molecule_graph(mol)
    positions = embed(Chem.Mol(mol), num, seed)
    if forcefield is not None and positions:
        work = Chem.Mol(mol)  # force-field typing changes aromaticity flags: keep them off mol
        work.RemoveAllConformers()
        for pos in positions:
            conformer = Chem.Conformer(work.GetNumAtoms())
            for i, p in enumerate(pos.tolist()):
                conformer.SetAtomPosition(i, p)
            work.AddConformer(conformer, assignId=True)
        if forcefield == "mmff" and not AllChem.MMFFHasAllMoleculeParams(work):
            forcefield = "uff"
        try:
            relax(work, forcefield)
        except ValueError:  # no force field has parameters for it: ETKDG's geometry as it is
            pass
        positions = [torch.tensor(c.GetPositions()) for c in work.GetConformers()]
    return [Conformer(graph, canonical_frame(pos.float(), graph.heavy)) for pos in positions]


@dataclass
class CrystalComplex:
    """A ligand's crystal pose in a receptor, ready to train on: the ligand (explicit H, its
    crystal conformer), its local structures (the crystal's own first, then ETKDG ones with the
    crystal torsions set), the crystal positions [N, 3] of all its atoms, and the receptor
    atoms near the ligand."""

    name: str
    ligand: Chem.Mol
    structures: list[Conformer]
    crystal: Tensor
    receptor_pos: Tensor
    receptor_x: Tensor

    @classmethod
    def of(cls, name: str, receptor: Receptor, ligand: Chem.Mol, *, etkdg: int, seed: int,
           reach: float) -> "CrystalComplex":
        """From a ligand with explicit H and crystal coordinates; receptor atoms within
        `reach` Å of the ligand's centroid are kept (the pocket radius plus room for the
        box centre's jitter)."""
        crystal = torch.tensor(ligand.GetConformer().GetPositions(), dtype=torch.float32)
        own = Conformer.of(ligand)
        own = Conformer(own.graph, canonical_frame(own.pos, own.graph.heavy))
        structures = [own]
        if etkdg and len(own.graph.torsions):
            angles = dihedrals(crystal, own.graph.torsions.atoms)
            setter = TorsionBatch([own.graph.torsions], [0])
            for c in local_structures(Chem.Mol(ligand), etkdg, seed):
                structures.append(Conformer(own.graph, canonical_frame(setter.set(c.pos, angles), own.graph.heavy)))
        heavy = own.graph.heavy
        near = receptor.near(crystal[heavy].mean(0).numpy(), reach)
        return cls(name, Chem.Mol(ligand), structures, crystal, torch.as_tensor(near.pos, dtype=torch.float32),
                   pocket_features(near))

    def centroid(self) -> Tensor:
        return self.crystal[self.structures[0].graph.heavy].mean(0)

    def pocket(self, centre: Tensor, radius: float = POCKET_RADIUS) -> Pocket:
        keep = (self.receptor_pos - centre).norm(dim=-1) <= radius
        return Pocket(self.receptor_pos[keep], self.receptor_x[keep])
