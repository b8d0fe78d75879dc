"""Torsion angles: which bonds rotate, what rotates with them, and setting them in batches.

A conformer is its *local structure* (bond lengths, angles, rings, stereocentres, from RDKit's
ETKDG) plus the dihedral angles of its rotatable bonds (Jing et al. 2022, "Torsional
Diffusion").  A torsion is four atoms (a, b, c, d) around the rotatable bond b–c; its angle
is the dihedral a–b–c–d, and setting it rotates the atoms on c's side of the bond (the
`moving` atoms, the smaller side) about the b→c axis.

Rotating about b–c is a rigid motion of the moving side that fixes b and c, so it leaves the
dihedral of every other rotatable bond unchanged (that bond's four atoms lie on one side, or
on the axis): torsions can be set one after another, in any order, each to its target.
Stereocentres and double-bond stereo are preserved for the same reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from rdkit import Chem
from torch import Tensor

_ROTATABLE = Chem.MolFromSmarts("[!$(*#*)&!D1]-&!@[!$(*#*)&!D1]")
"""Single, acyclic bonds between atoms with other neighbours, neither end in a triple bond
(there the dihedral is undefined: a, b, c are collinear)."""
_AMIDE = Chem.MolFromSmarts("[CX3](=[O,S])-&!@[NX3]")
"""Amide and thioamide C–N bonds: partial double bonds, left planar as ETKDG makes them."""


@dataclass
class Torsions:
    """The rotatable bonds of one molecule: atoms [m, 4] (a, b, c, d) and, for each, the
    indices of the atoms that turn with it (c's side, without c)."""

    atoms: Tensor
    moving: list[Tensor]

    def __len__(self) -> int:
        return len(self.moving)


def find_torsions(mol: Chem.Mol) -> Torsions:
    """The rotatable bonds of a molecule (with explicit H) that move heavy atoms.

    a and d are the lowest-index heavy neighbours of b and c; bonds whose sides hold no heavy
    atom besides b or c (methyl, hydroxyl rotors) are left as ETKDG makes them: they move only
    hydrogens."""
    amides = {frozenset(m[:1] + m[2:]) for m in mol.GetSubstructMatches(_AMIDE)}
    atoms, moving = [], []
    for b, c in mol.GetSubstructMatches(_ROTATABLE):
        if frozenset((b, c)) in amides:
            continue
        a, d = _heavy_neighbour(mol, b, c), _heavy_neighbour(mol, c, b)
        if a is None or d is None:
            continue
        side_c = _side(mol, c, b)
        if len(side_c) > mol.GetNumAtoms() - len(side_c):  # turn the smaller side
            a, b, c, d, side_c = d, c, b, a, _side(mol, b, c)
        atoms.append((a, b, c, d))
        moving.append(torch.tensor(sorted(side_c - {c}), dtype=torch.long))
    return Torsions(torch.tensor(atoms, dtype=torch.long).reshape(-1, 4), moving)


def _heavy_neighbour(mol: Chem.Mol, atom: int, other: int) -> int | None:
    heavy = [n.GetIdx() for n in mol.GetAtomWithIdx(atom).GetNeighbors()
             if n.GetAtomicNum() > 1 and n.GetIdx() != other]
    return min(heavy) if heavy else None


def _side(mol: Chem.Mol, start: int, blocked: int) -> set[int]:
    """Atoms reachable from `start` without passing through `blocked` (start included)."""
    seen, stack = {start}, [start]
    while stack:
        for n in mol.GetAtomWithIdx(stack.pop()).GetNeighbors():
            i = n.GetIdx()
            if i != blocked and i not in seen:
                seen.add(i)
                stack.append(i)
    return seen


def dihedrals(pos: Tensor, atoms: Tensor) -> Tensor:
    """Dihedral angles a–b–c–d in (−π, π] of the rows atoms [T, 4] of positions pos [N, 3]."""
    p0, p1, p2, p3 = (pos[atoms[:, i]] for i in range(4))
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1 = b1 / b1.norm(dim=-1, keepdim=True)
    v = b0 - (b0 * b1).sum(-1, keepdim=True) * b1
    w = b2 - (b2 * b1).sum(-1, keepdim=True) * b1
    x = (v * w).sum(-1)
    y = (torch.cross(b1, v, dim=-1) * w).sum(-1)
    return torch.atan2(y, x)


def rotate(points: Tensor, origin: Tensor, axis: Tensor, angle: Tensor) -> Tensor:
    """Rodrigues' rotation of points [M, 3] by angle [M] about unit axes [M, 3] through origin."""
    p = points - origin
    cos, sin = angle.cos()[:, None], angle.sin()[:, None]
    dot = (p * axis).sum(-1, keepdim=True)
    return origin + p * cos + torch.cross(axis, p, dim=-1) * sin + axis * dot * (1 - cos)


class TorsionBatch:
    """Torsions of many conformers whose atoms are rows of one position tensor [N, 3].

    `atoms` [T, 4] are rows of that tensor; `moves` holds, for each rank r, every conformer's
    r-th torsion and the atoms it turns, so `set` turns all conformers' r-th torsions at once:
    one vectorized rotation per rank, not per torsion.
    """

    def __init__(self, per_conformer: list[Torsions], offsets: list[int]):
        atoms, moves = [], {}
        row = 0
        for tors, offset in zip(per_conformer, offsets):
            atoms.append(tors.atoms + offset)
            for rank, moving in enumerate(tors.moving):
                moves.setdefault(rank, []).append((row, moving + offset))
                row += 1
        self.atoms = torch.cat(atoms) if atoms else torch.zeros((0, 4), dtype=torch.long)
        # per rank: its torsions (rows of atoms), and each moving atom with the rank-local
        # index of its torsion
        self.moves = []
        for rank in sorted(moves):
            rows = torch.tensor([r for r, _ in moves[rank]], dtype=torch.long)
            atom_rows = torch.cat([m for _, m in moves[rank]])
            local = torch.repeat_interleave(torch.arange(len(rows)),
                                            torch.tensor([len(m) for _, m in moves[rank]]))
            self.moves.append((rows, atom_rows, local))
        # every (torsion row, atom it turns) pair of all ranks at once, for `angle_gradient`
        self.turned = torch.cat([torch.stack([rows[local], atom_rows]) for rows, atom_rows, local in self.moves], 1) \
            if self.moves else torch.zeros((2, 0), dtype=torch.long)

    def to(self, device) -> "TorsionBatch":
        self.atoms, self.turned = self.atoms.to(device), self.turned.to(device)
        self.moves = [tuple(t.to(device) for t in m) for m in self.moves]
        return self

    def set(self, pos: Tensor, angles: Tensor) -> Tensor:
        """Positions with every torsion turned to angles [T] (radians); pos is not modified.
        Differentiable in the angles (in closed form, see `angle_gradient`) and, by autograd
        through every turn, in pos."""
        if angles.requires_grad and not pos.requires_grad:
            return _SetTorsions.apply(pos, angles, self)
        return self._turn(pos, angles)

    def _turn(self, pos: Tensor, angles: Tensor) -> Tensor:
        pos = pos.clone()
        for rows, atom_rows, local in self.moves:
            atoms = self.atoms[rows]
            delta = angles[rows] - dihedrals(pos, atoms)
            b, c = pos[atoms[:, 1]], pos[atoms[:, 2]]
            axis = (c - b) / (c - b).norm(dim=-1, keepdim=True)
            pos[atom_rows] = rotate(pos[atom_rows], b[local], axis[local], delta[local])
        return pos

    def angle_gradient(self, pos: Tensor, grad: Tensor) -> Tensor:
        """∂f/∂θ [T] of a function f of the positions pos [N, 3] that `set` returned, given
        grad = ∂f/∂pos.  Turning torsion k by dθ turns its moving atoms i by dθ about the unit
        axis u = (c − b)/|c − b| through b, and no other atom (the other torsions keep their
        angles), so ∂pos_i/∂θ_k = u × (pos_i − b) and ∂f/∂θ_k = u · Σ_i (pos_i − b) × grad_i:
        one pass over all torsions, where autograd would retrace every turn."""
        rows, atoms = self.turned
        b, c = pos[self.atoms[:, 1]], pos[self.atoms[:, 2]]
        axis = (c - b) / (c - b).norm(dim=-1, keepdim=True)
        torque = torch.zeros_like(b).index_add_(0, rows, torch.cross(pos[atoms] - b[rows], grad[atoms], dim=-1))
        return (axis * torque).sum(-1)


class _SetTorsions(torch.autograd.Function):
    """`TorsionBatch.set` with its angle gradient in closed form (the positions it starts
    from are constants)."""

    @staticmethod
    def forward(ctx, pos: Tensor, angles: Tensor, batch: TorsionBatch) -> Tensor:
        out = batch._turn(pos, angles)
        ctx.batch = batch
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        (out,) = ctx.saved_tensors
        return None, ctx.batch.angle_gradient(out, grad), None


def relieve_clashes(torsions: TorsionBatch, pos: Tensor, angles: Tensor, *, pairs: Tensor,
                    limits: Tensor, pair_conformer: Tensor, steps: int,
                    rate: float = 0.05, max_turn: float = 0.1) -> Tensor:
    """Torsion angles [T] turned, by at most `steps` steps of gradient descent, away from
    steric clashes: pairs [2, P] (rows of pos, of conformer pair_conformer [P]) closer than
    their clash distances limits [P].

    A conformer with a pair closer than CLEAR × its limit is *crowded*; the penalty
    Σ relu(REACH · limit − d)² (Å²) over crowded conformers' pairs pushes them apart, each
    step turning a torsion by rate · −∂penalty/∂θ, at most max_turn radians.  Conformers that
    are not crowded are left as sampled, and the loop stops once none is.  Only torsions
    change: bond lengths, angles and stereo stay exactly as they were.
    """
    angles = angles.detach().clone()
    i, j = pairs
    conformers = int(pair_conformer.max()) + 1 if len(pair_conformer) else 0
    for _ in range(steps):
        angles.requires_grad_(True)
        with torch.enable_grad():
            moved = torsions.set(pos, angles)
            distance = (moved[i] - moved[j]).norm(dim=-1)
            crowded_pair = distance < CLEAR * limits
            if not crowded_pair.any():
                break
            crowded = torch.zeros(conformers, dtype=torch.bool, device=pos.device)
            crowded[pair_conformer[crowded_pair]] = True
            overlap = torch.relu(REACH * limits - distance) * crowded[pair_conformer]
            (grad,) = torch.autograd.grad(overlap.square().sum(), angles)
        angles = angles.detach() - (rate * grad).clamp(-max_turn, max_turn)
    return angles.detach()


CLEAR, REACH = 1.05, 1.3
"""A conformer counts as crowded while a pair is within CLEAR × its clash distance; relief
then pushes its pairs out to REACH × that distance."""
