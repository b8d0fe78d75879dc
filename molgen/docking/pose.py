"""Ligand poses as diffusion states: where the ligand sits, how it is turned, how it is bent.

A pose of a ligand in a box is its local structure L (bond lengths, angles, rings and stereo,
from ETKDG: molgen.conformers) with
- its torsions θ set (the conformer generator's `TorsionBatch.set`),
- then rotated by R about its heavy-atom centroid, and
- moved so that centroid lies at box centre + TRANSLATION_SCALE · τ:

    pose(τ, R, θ) = R (T_θ(L) − c(T_θ(L))) + centre + s τ.

The state of a pose is one column of numbers per complex: τ (3), R's first two columns r₁,
r₂ (an unconstrained 6-D embedding of the rotation, made orthonormal by Gram–Schmidt on read-out;
Zhou et al. 2019), and (cos θ, sin θ) per torsion.  Every entry is a Euclidean coordinate, so
the core's samplers, losses and guidance run on poses unchanged; pure noise reads out as a
uniformly random rotation (Gram–Schmidt of Gaussian columns is Haar-distributed) and a random
placement around the box centre.

L is first put in a canonical frame (principal axes of its heavy atoms, a proper rotation, signs
fixed by the third moments), so that R means the same for every local structure of a molecule.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..conformers.model import Conformer, ConformerSpace
from ..conformers.torsions import dihedrals
from ..diffusion.spaces import GraphSpace, segment_sum
from ..metrics.stats import kabsch

TRANSLATION_SCALE = 4.0
"""Å per unit of τ: ligand centroids within a few Å of the box centre are O(1) states."""
RIGID_ROWS = 9
"""τ (3) and the rotation's two columns (6) head every complex's column."""


def canonical_frame(pos: Tensor, heavy: Tensor) -> Tensor:
    """pos [N, 3] moved so its heavy atoms' centroid is the origin and their principal axes
    (largest variance first) are x, y, z — by a proper rotation, never a reflection: the axis
    signs follow the third moment along x and y, and z = x × y."""
    pos = pos.double()
    centred = pos - pos[heavy].mean(0)
    _, vectors = torch.linalg.eigh(centred[heavy].T @ centred[heavy])
    axes = vectors.flip(1).T  # rows: principal axes, largest eigenvalue first
    for k in range(2):
        if (centred[heavy] @ axes[k]).pow(3).sum() < 0:
            axes[k] = -axes[k]
    axes[2] = torch.linalg.cross(axes[0], axes[1])
    return (centred @ axes.T).float()


def rotation_from_6d(r: Tensor) -> Tensor:
    """Rotation matrices [B, 3, 3] from columns r [B, 6] = (r₁, r₂) by Gram–Schmidt."""
    a, b = r[:, :3], r[:, 3:]
    e1 = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    b = b - (e1 * b).sum(-1, keepdim=True) * e1
    e2 = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return torch.stack([e1, e2, torch.linalg.cross(e1, e2)], dim=-1)


@dataclass
class Pocket:
    """The receptor atoms a model sees: positions pos [P, 3] (Å) and features x [P, F]
    (molgen.docking.model.pocket_features)."""

    pos: Tensor
    x: Tensor


@dataclass
class Docking:
    """One ligand to be placed in one pocket: its graph and local structure (`Conformer`, the
    local structure in its canonical frame), the pocket, and the box centre [3] (Å)."""

    ligand: Conformer
    pocket: Pocket
    centre: Tensor


class PoseSpace(GraphSpace):
    """States [R, 1] of a batch of B poses: each complex's column (τ, r₁, r₂, torsions' cos and
    sin; see the module docstring) as consecutive rows, with what the network needs of the
    batch: the ligands (a `ConformerSpace`), the pockets and the box centres."""

    def __init__(self, dockings: list[Docking], device=None):
        self.dockings = dockings
        self.ligands = ConformerSpace([d.ligand for d in dockings], device)
        torsions = torch.bincount(self.ligands.batch, minlength=len(dockings)).cpu()
        sizes = RIGID_ROWS + 2 * torsions
        super().__init__(torch.repeat_interleave(torch.arange(len(dockings)), sizes).to(device),
                         len(dockings))
        starts = torch.cumsum(sizes, 0) - sizes
        self.rigid_rows = (starts[:, None] + torch.arange(RIGID_ROWS)).to(device)
        rank = torch.cat([torch.arange(int(n)) for n in torsions]).long() if len(self.ligands.batch) \
            else torch.zeros(0, dtype=torch.long)
        first = starts[self.ligands.batch.cpu()] + RIGID_ROWS + 2 * rank
        self.torsion_rows = torch.stack([first, first + 1], 1).to(device)
        self.centre = torch.stack([d.centre for d in dockings]).float().to(device)
        counts = torch.tensor([len(d.pocket.pos) for d in dockings])
        self.pocket_batch = torch.repeat_interleave(torch.arange(len(dockings)), counts).to(device)
        self.pocket_pos = torch.cat([d.pocket.pos for d in dockings]).float().to(device)
        self.pocket_x = torch.cat([d.pocket.x for d in dockings]).float().to(device)
        atoms = torch.tensor([d.ligand.graph.num_atoms for d in dockings])
        self.atom_complex = torch.repeat_interleave(torch.arange(len(dockings)), atoms).to(device)

    def subset(self, start: int, stop: int):
        rows = (self.batch >= start) & (self.batch < stop)
        return PoseSpace(self.dockings[start:stop], self.batch.device), rows

    def parts(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """τ [B, 3], rotation columns [B, 6] and torsion rows [T, 2] of a single-copy state."""
        rigid = x[self.rigid_rows, 0]
        return rigid[:, :3], rigid[:, 3:], x[self.torsion_rows, 0]

    def assemble(self, translation: Tensor, rotation: Tensor, torsions: Tensor) -> Tensor:
        """The state [R, 1] of parts as `parts` returns them."""
        x = translation.new_empty((len(self.batch), 1))
        x[self.rigid_rows, 0] = torch.cat([translation, rotation], 1)
        x[self.torsion_rows, 0] = torsions
        return x

    def positions(self, x: Tensor, clash_steps: int = 0) -> Tensor:
        """All ligand atoms' positions [N, 3] (Å, the receptor's frame) in the poses that a
        single-copy state x describes (clash_steps: see ConformerSpace.positions)."""
        translation, rotation, torsions = self.parts(x)
        local = self.ligands.positions(torsions, clash_steps)
        heavy = self.ligands.heavy
        centroid = segment_sum(local[heavy], self.ligands.atom_batch, self.num_graphs) \
            / torch.bincount(self.ligands.atom_batch, minlength=self.num_graphs)[:, None]
        rot = rotation_from_6d(rotation)[self.atom_complex]
        turned = torch.einsum("nij,nj->ni", rot, local - centroid[self.atom_complex])
        return turned + (self.centre + TRANSLATION_SCALE * translation)[self.atom_complex]

    def state_of(self, positions: Tensor) -> Tensor:
        """The state [R, 1] of given poses (all ligand atoms' positions [N, 3], in atom order):
        their torsions, the rotation that best fits the local structure with those torsions
        onto each pose (exact when the local structure is the pose's own), and the centroid."""
        torsions = dihedrals(positions, self.ligands.torsions.atoms)
        rows = torch.stack([torsions.cos(), torsions.sin()], 1)
        local = self.ligands.positions(rows)
        heavy, index = self.ligands.heavy, self.ligands.atom_batch
        sizes = torch.bincount(index, minlength=self.num_graphs)[:, None]
        centre_local = segment_sum(local[heavy], index, self.num_graphs) / sizes
        centre_pose = segment_sum(positions[heavy], index, self.num_graphs) / sizes
        rotations = []
        for b, (src, dst) in enumerate(zip((local[heavy] - centre_local[index]).split(sizes[:, 0].tolist()),
                                           (positions[heavy] - centre_pose[index]).split(sizes[:, 0].tolist()))):
            rotations.append(kabsch(src, dst))
        rot = torch.stack(rotations)
        translation = (centre_pose - self.centre) / TRANSLATION_SCALE
        return self.assemble(translation, torch.cat([rot[:, :, 0], rot[:, :, 1]], 1), rows)


def box_centre(points) -> Tensor:
    """The centroid [3] of points [n, 3] (e.g. a reference ligand's heavy atoms)."""
    return torch.as_tensor(np.asarray(points, dtype=np.float64).reshape(-1, 3).mean(0), dtype=torch.float32)
