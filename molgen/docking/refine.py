"""Poses finished by physics: local optimisation on Vina's scoring function, and ranking.

The learned model places the ligand; Vina's empirical function (molgen.docking.scoring, a
torch re-implementation) then settles each pose into the nearest minimum, as Vina's own
search ends every Monte-Carlo step with a local optimisation.  The optimisation moves only
what a pose state holds — the centroid, the rotation and the torsions (molgen.docking.pose)
— so bond lengths, angles, rings and stereo stay those of the local structure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from rdkit import Chem
from torch import Tensor

from .pose import PoseSpace
from .receptor import Receptor
from .scoring import VinaLigand, VinaScore

BOX_PENALTY = 1.0
"""kcal/mol/Å² for each heavy atom's distance outside the box: Vina's search stays inside it."""


def minimize(space: PoseSpace, x: Tensor, energy: Callable[[Tensor], Tensor], *, steps: int = 100,
             lr: float = 0.02) -> tuple[Tensor, Tensor]:
    """Adam on energy(positions) [B] (all ligand atoms' positions [N, 3] → one energy per
    complex) over each complex's centroid offset, rotation columns and torsion angles, from the
    state x [R, 1]; returns the optimised state and its energies [B].  Complexes do not
    interact, so one summed objective optimises each."""
    translation, rotation, rows = (p.detach().clone() for p in space.parts(x))
    angles = torch.atan2(rows[:, 1], rows[:, 0])
    params = [translation.requires_grad_(), rotation.requires_grad_(), angles.requires_grad_()]
    # τ is in units of TRANSLATION_SCALE (4 Å) and angles in radians: steps of ~0.1 Å and ~1°
    optim = torch.optim.Adam([{"params": params[:2], "lr": lr}, {"params": params[2:], "lr": 2 * lr}])

    def state() -> Tensor:
        return space.assemble(translation, rotation, torch.stack([angles.cos(), angles.sin()], 1))

    with torch.enable_grad():
        for _ in range(steps):
            optim.zero_grad()
            energy(space.positions(state())).sum().backward()
            optim.step()
    with torch.no_grad():
        final = state()
        return final, energy(space.positions(final))


def box_penalty(heavy_pos: Tensor, centre: Tensor, size: Tensor) -> Tensor:
    """BOX_PENALTY · Σ (distance outside the box)² over heavy atoms [B, n, 3] → [B]."""
    outside = ((heavy_pos - centre).abs() - size / 2).clamp_min(0)
    return BOX_PENALTY * outside.pow(2).sum((-1, -2))


@dataclass
class Physics:
    """Vina's function for one ligand (num_atoms atoms with H) in one box: what `minimize`
    and the ranking use."""

    score: VinaScore
    ligand: VinaLigand
    num_atoms: int
    centre: Tensor
    size: Tensor

    @classmethod
    def of(cls, receptor: Receptor, ligand: Chem.Mol, centre, size) -> "Physics":
        centre, size = (np.asarray(v, dtype=np.float64) for v in (centre, size))
        return cls(VinaScore.from_receptor(receptor, centre, size), VinaLigand.from_mol(ligand),
                   ligand.GetNumAtoms(), torch.as_tensor(centre), torch.as_tensor(size))

    def heavy(self, positions: Tensor) -> Tensor:
        """Heavy-atom positions [B, n, 3] of poses given as all atoms' positions [B·N, 3]."""
        return self.ligand.positions(positions.double().reshape(-1, self.num_atoms, 3))

    def energy(self, positions: Tensor) -> Tensor:
        """inter + intra + the box penalty [B] of poses (all atoms' positions [B·N, 3])."""
        heavy = self.heavy(positions)
        return self.score.energy(heavy, self.ligand) + box_penalty(heavy, self.centre, self.size)

    def vina_scores(self, positions: Tensor) -> Tensor:
        """What Vina reports for each pose [B] (kcal/mol): the best pose's intramolecular
        energy as the reference, as Vina scores its own poses."""
        heavy = self.heavy(positions)
        best = int(self.score.energy(heavy, self.ligand).argmin())
        reference = self.score.intra(heavy[best], self.ligand.types, self.ligand.pairs)
        return self.score.score(heavy, self.ligand, intra_ref=reference)
