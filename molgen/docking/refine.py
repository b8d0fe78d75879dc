"""Poses finished by physics: Vina's Monte-Carlo search from each sampled pose, and ranking.

The learned model places the ligand; Vina's empirical function (molgen.docking.scoring, a
torch re-implementation) then takes over, as Vina's own search does it: each pose starts a
Monte-Carlo chain of random mutations (a move, a turn or one torsion), each followed by a
local optimisation and accepted by the Metropolis criterion; all chains run batched, on grid
maps of the receptor's energy (`VinaGrid`), and their best poses are polished on the exact
function.  The optimisation moves only what a pose state holds — the centroid, the rotation
and the torsions (molgen.docking.pose) — so bond lengths, angles, rings and stereo stay those
of the local structure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from rdkit import Chem
from torch import Tensor

from ..data.checks import check_int, check_real
from ..diffusion.spaces import segment_sum
from .pose import TRANSLATION_SCALE, PoseSpace, rotation_from_6d
from .receptor import Receptor
from .scoring import VinaGrid, VinaLigand, VinaScore

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


MUTATION_AMPLITUDE = 2.0
"""Å: how far a Monte-Carlo mutation moves the centroid (and the atoms at the radius of
gyration, for a rotation) at most — Vina's amplitude."""
TEMPERATURE = 1.2
"""kcal/mol: the Metropolis temperature of Vina's Monte-Carlo search."""


def mutate(space: PoseSpace, x: Tensor, generator: torch.Generator) -> Tensor:
    """One random change per complex of the poses x [R, 1], as Vina's Monte-Carlo search
    makes them: either the centroid moves (uniformly within MUTATION_AMPLITUDE), or the
    ligand turns about its centroid (by a rotation vector uniform in a ball of radius
    MUTATION_AMPLITUDE / radius of gyration), or one torsion takes a uniformly random angle —
    each of the 2 + (number of torsions) choices equally likely."""
    translation, rotation, rows = (p.clone() for p in space.parts(x))
    num = space.num_graphs
    torsions = torch.bincount(space.ligands.batch, minlength=num)
    choice = (torch.rand(num, generator=generator) * (2 + torsions).cpu()).long().to(x.device)
    ball = _in_ball(num, generator).to(x)
    move = choice == 0
    translation[move] += MUTATION_AMPLITUDE / TRANSLATION_SCALE * ball[move]
    turn = choice == 1
    if turn.any():
        pos = space.positions(x)
        heavy = space.ligands.heavy
        centred = pos - _segment_mean(pos, heavy, space)[space.atom_complex]
        gyration = _segment_mean(centred.pow(2).sum(-1, keepdim=True), heavy, space).sqrt()
        r = rotation_from_6d(rotation[turn]).to(x)
        q = _rodrigues(ball[turn] * MUTATION_AMPLITUDE / gyration[turn].clamp_min(1.0))
        r = q @ r
        rotation[turn] = torch.cat([r[:, :, 0], r[:, :, 1]], 1)
    # the torsion picked in complex b is its (choice - 2)-th, i.e. the row first[b] + choice - 2
    first = torch.cumsum(torsions, 0) - torsions
    twist = (choice >= 2).nonzero().squeeze(1)
    angle = (torch.rand(len(twist), generator=generator) * 2 - 1).to(x) * torch.pi
    rows[first[twist] + choice[twist] - 2] = torch.stack([angle.cos(), angle.sin()], 1)
    return space.assemble(translation, rotation, rows)


@dataclass(frozen=True)
class SearchConfig:
    """How `search` refines poses: Monte-Carlo rounds per chain, Adam steps of each local
    optimisation on the grid maps, and of the final one on the exact function, and Adam's
    step size for all of them (`minimize`).  40 rounds of 60 steps (since 2026-12-03) solved
    64 of 100 CASF validation complexes at top-1 against 62 for 80 rounds of 30 steps (the
    same Adam steps) at the same CPU time; lr 0.04 tied lr 0.02 (61 against 62;
    benchmarks/README.md)."""

    rounds: int = 40
    steps: int = 60
    polish_steps: int = 50
    lr: float = 0.02

    def __post_init__(self):
        for key in ("rounds", "steps", "polish_steps"):
            check_int(f"search {key}", getattr(self, key), 0)
        check_real("search lr", self.lr, 1e-6)


def search(space: PoseSpace, x: Tensor, physics: "Physics", *, config: SearchConfig,
           generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Vina's search, batched: every pose of x [R, 1] is one Monte-Carlo chain, locally
    optimised (`minimize`, config.steps), then config.rounds times mutated (`mutate`),
    optimised again and accepted by the Metropolis criterion at TEMPERATURE — all on the grid
    maps (`Physics.grid_energy`); the best state each chain visited is then optimised on the
    exact function (config.polish_steps).  Returns those states and their exact energies [B]."""
    steps = config.steps
    x, e = minimize(space, x, physics.grid_energy, steps=steps, lr=config.lr)
    best_x, best_e = x, e
    for _ in range(config.rounds):
        y, ey = minimize(space, mutate(space, x, generator), physics.grid_energy, steps=steps,
                         lr=config.lr)
        u = torch.rand(len(e), generator=generator).to(e)
        accept = (ey < e) | (u < torch.exp((e - ey) / TEMPERATURE))
        x = torch.where(accept[space.batch, None], y, x)
        e = torch.where(accept, ey, e)
        better = e < best_e
        best_x = torch.where(better[space.batch, None], x, best_x)
        best_e = torch.where(better, e, best_e)
    return minimize(space, best_x, physics.energy, steps=config.polish_steps, lr=config.lr)


def _in_ball(n: int, generator: torch.Generator) -> Tensor:
    """n points [n, 3] uniform in the unit ball."""
    v = torch.randn((n, 3), generator=generator)
    return v / v.norm(dim=1, keepdim=True).clamp_min(1e-12) * torch.rand((n, 1), generator=generator) ** (1 / 3)


def _segment_mean(values: Tensor, heavy: Tensor, space: PoseSpace) -> Tensor:
    """Per complex [B, ...] mean of per-atom values [N, ...] over its heavy atoms."""
    index = space.atom_complex[heavy]
    counts = torch.bincount(index, minlength=space.num_graphs).view(-1, *[1] * (values.dim() - 1))
    return segment_sum(values[heavy], index, space.num_graphs) / counts


def _rodrigues(v: Tensor) -> Tensor:
    """Rotation matrices [n, 3, 3] of rotation vectors v [n, 3] (axis · angle)."""
    angle = v.norm(dim=1).clamp_min(1e-12)[:, None, None]
    k = torch.zeros((len(v), 3, 3), dtype=v.dtype, device=v.device)
    a = v / angle[:, :, 0]
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -a[:, 2], a[:, 1], -a[:, 0]
    k = k - k.transpose(1, 2)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand_as(k)
    return eye + angle.sin() * k + (1 - angle.cos()) * k @ k


def box_penalty(heavy_pos: Tensor, centre: Tensor, size: Tensor) -> Tensor:
    """BOX_PENALTY · Σ (distance outside the box)² over heavy atoms [B, n, 3] → [B]."""
    outside = ((heavy_pos - centre).abs() - size / 2).clamp_min(0)
    return BOX_PENALTY * outside.pow(2).sum((-1, -2))


@dataclass
class Physics:
    """Vina's function for one ligand (num_atoms atoms with H) in one box: what `minimize`,
    `search` and the ranking use; its grid maps (`VinaGrid`) for the fast, approximate energy
    of the search."""

    score: VinaScore
    ligand: VinaLigand
    num_atoms: int
    centre: Tensor
    size: Tensor
    grid: VinaGrid

    @classmethod
    def of(cls, receptor: Receptor, ligand: Chem.Mol, centre, size) -> "Physics":
        centre, size = (np.asarray(v, dtype=np.float64) for v in (centre, size))
        score, vina_ligand = VinaScore.from_receptor(receptor, centre, size), VinaLigand.from_mol(ligand)
        return cls(score, vina_ligand, ligand.GetNumAtoms(), torch.as_tensor(centre),
                   torch.as_tensor(size), VinaGrid.of(score, vina_ligand.types, centre=centre, size=size))

    def heavy(self, positions: Tensor) -> Tensor:
        """Heavy-atom positions [B, n, 3] of poses given as all atoms' positions [B·N, 3]."""
        return self.ligand.positions(positions.double().reshape(-1, self.num_atoms, 3))

    def energy(self, positions: Tensor) -> Tensor:
        """inter + intra + the box penalty [B] of poses (all atoms' positions [B·N, 3])."""
        return self._energy(positions, self.score.inter)

    def grid_energy(self, positions: Tensor) -> Tensor:
        """`energy` with inter from the grid maps: within about 1 kcal/mol, a hundred times
        cheaper."""
        return self._energy(positions, self.grid.inter)

    def _energy(self, positions: Tensor, inter: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        heavy = self.heavy(positions)
        return inter(heavy, self.ligand.types) + \
            self.score.intra(heavy, self.ligand.types, self.ligand.pairs) + \
            box_penalty(heavy, self.centre, self.size)

    def vina_scores(self, positions: Tensor) -> Tensor:
        """What Vina reports for each pose [B] (kcal/mol): the best pose's intramolecular
        energy as the reference, as Vina scores its own poses."""
        heavy = self.heavy(positions)
        best = int(self.score.energy(heavy, self.ligand).argmin())
        reference = self.score.intra(heavy[best], self.ligand.types, self.ligand.pairs)
        return self.score.score(heavy, self.ligand, intra_ref=reference)
