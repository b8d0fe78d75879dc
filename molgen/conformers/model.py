"""The torsional diffusion state, its space, and the network that denoises it.

State.  A conformer's state is one row per torsion, (cos θ, sin θ): its torsion angles
embedded in R², where the core's VP diffusion runs unchanged (x_t = α x_0 + σ ε in R^{2m});
the angle of a state is atan2 of its row, so noise far from the circle only means an
uncertain angle.  The samplers, losses and schedules are the core's; `ConformerSpace` is a
`GraphSpace` (rows grouped by conformer) that also carries what the network needs of the
batch: each conformer's local structure (positions of all atoms) and its molecule's graph.

Network.  To denoise, `TorsionNet` builds the conformer the state describes (the local
structure with its torsions turned to the state's angles, `TorsionBatch.set`), runs
invariant message passing over nearby heavy atoms (atom and bond features, topological
and Euclidean distances), and reads each torsion's prediction from its four atoms, the
state's row, the time and ETKDG's torsion potential for that bond (CSD knowledge the few
hundred training ligands could not teach; `featurize.torsion_prior`).  Distances are invariant under rigid motions and reflections;
the handedness a prediction needs comes from the row itself (the sign of sin θ).

Condition (optional, `conditions` > 0): where a training conformer's torsions come from,
one-hot over `SOURCES` (a crystal, or a force-field minimum), or `NULL_SOURCE` for neither
(dropped, classifier-free guidance).  Generation asks for crystal torsions, and guidance
w > 0 pushes them further from force-field minima: bound ligands are more extended than
gas-phase minima, and force-field conformers outnumber crystal ones.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from ..diffusion.spaces import GraphSpace
from ..nn.layers import mlp, sinusoidal_embedding
from .featurize import ATOM_DIM, PAIR_DIM, PRIOR_TERMS, MoleculeGraph, molecule_graph
from .torsions import TorsionBatch, dihedrals, relieve_clashes

SOURCES = ("crystal", "force_field")
"""Where training torsions come from: the columns of a source condition."""
NULL_SOURCE = (0.0, 0.0)
"""The condition of 'any source' (the unconditional model of classifier-free guidance)."""


def source_condition(source: str, n: int) -> Tensor:
    """Conditions [n, len(SOURCES)] asking n conformers for torsions from `source`."""
    cond = torch.zeros(n, len(SOURCES))
    cond[:, SOURCES.index(source)] = 1.0
    return cond


@dataclass
class Conformer:
    """A molecule's graph with one local structure (positions [num_atoms, 3])."""

    graph: MoleculeGraph
    pos: Tensor

    @classmethod
    def of(cls, mol) -> "Conformer":
        """An RDKit molecule (explicit H) with its first conformer as the local structure."""
        return cls(molecule_graph(mol), torch.tensor(mol.GetConformer().GetPositions(),
                                                     dtype=torch.float32))

    def angles(self) -> Tensor:
        return dihedrals(self.pos, self.graph.torsions.atoms)


def angles_to_state(angles: Tensor) -> Tensor:
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def state_to_angles(x: Tensor) -> Tensor:
    return torch.atan2(x[:, 1], x[:, 0])


class ConformerSpace(GraphSpace):
    """States [T, 2] of a batch of conformers (rows: torsions, grouped by conformer), with the
    conformers themselves: positions [N, 3] of all their atoms, their heavy atoms' features
    and pairs, and the torsions as a `TorsionBatch` over those positions."""

    def __init__(self, conformers: list[Conformer], device=None):
        self.conformers = conformers
        graphs = [c.graph for c in conformers]
        counts = torch.tensor([len(g.torsions) for g in graphs], dtype=torch.long)
        super().__init__(torch.repeat_interleave(torch.arange(len(graphs)), counts).to(device),
                         len(graphs))
        offsets = torch.cumsum(torch.tensor([0] + [g.num_atoms for g in graphs]), 0)
        self.pos = torch.cat([c.pos for c in conformers]).to(device)
        self.torsions = TorsionBatch([g.torsions for g in graphs], offsets[:-1].tolist()).to(device)
        heavy_counts = torch.tensor([len(g.heavy) for g in graphs])
        heavy_offsets = torch.cumsum(heavy_counts, 0) - heavy_counts
        self.heavy = torch.cat([g.heavy + o for g, o in zip(graphs, offsets[:-1])]).to(device)
        self.atom_batch = torch.repeat_interleave(torch.arange(len(graphs)), heavy_counts).to(device)
        self.atom_x = torch.cat([g.atom_x for g in graphs]).to(device)
        self.pairs = torch.cat([g.pairs + o for g, o in zip(graphs, heavy_offsets)], dim=1).to(device)
        self.pair_x = torch.cat([g.pair_x for g in graphs]).to(device)
        # each atom's row in the heavy-atom tensor (−1: a hydrogen); torsion atoms as such rows
        # (a, b, c, d are heavy by construction)
        self.heavy_row = torch.full((len(self.pos),), -1, dtype=torch.long, device=device)
        self.heavy_row[self.heavy] = torch.arange(len(self.heavy), device=device)
        self.torsion_heavy = self.heavy_row[self.torsions.atoms]
        # ETKDG's potential of each torsion, rewritten for our dihedral θ = φ − δ:
        # Σ_k A_k cos k(θ + δ) = Σ_k (A_k cos kδ) cos kθ − (A_k sin kδ) sin kθ
        prior_atoms = torch.cat([g.prior_atoms + o for g, o in zip(graphs, offsets[:-1])]).to(device)
        delta = dihedrals(self.pos, prior_atoms) - dihedrals(self.pos, self.torsions.atoms)
        k_delta = delta[:, None] * torch.arange(1, PRIOR_TERMS + 1, device=device)
        amplitude = torch.cat([g.prior for g in graphs]).to(device)
        self.prior_cos, self.prior_sin = amplitude * k_delta.cos(), -amplitude * k_delta.sin()
        self.has_prior = (amplitude != 0).any(1, keepdim=True).float()
        self.clash_pairs = torch.cat([g.clash_pairs + o for g, o in zip(graphs, offsets[:-1])], 1).to(device)
        self.clash_limits = torch.cat([g.clash_limits for g in graphs]).to(device)
        self.clash_conformer = torch.repeat_interleave(
            torch.arange(len(graphs)), torch.tensor([len(g.clash_limits) for g in graphs])).to(device)
        # conformers of one molecule share its graph: the groups that particle guidance repels
        groups: dict[int, list[int]] = {}
        for i, g in enumerate(graphs):
            groups.setdefault(id(g), []).append(i)
        self.molecules = [members for members in groups.values() if len(members) > 1]

    def subset(self, start: int, stop: int):
        rows = (self.batch >= start) & (self.batch < stop)
        return ConformerSpace(self.conformers[start:stop], self.batch.device), rows

    def data(self) -> Tensor:
        """The state of the local structures' own torsions (the training data x_0)."""
        return angles_to_state(dihedrals(self.pos, self.torsions.atoms))

    def positions(self, x: Tensor, clash_steps: int = 0) -> Tensor:
        """All atoms' positions [N, 3] of the conformers that the state x describes; with
        clash_steps > 0 their torsions first turned away from steric clashes
        (`relieve_clashes`, at most that many steps)."""
        angles = state_to_angles(x)
        if clash_steps:
            angles = relieve_clashes(self.torsions, self.pos, angles, pairs=self.clash_pairs,
                                     limits=self.clash_limits, pair_conformer=self.clash_conformer,
                                     steps=clash_steps)
        return self.torsions.set(self.pos, angles)

    def repulsion(self, x: Tensor) -> Tensor:
        """The potential of particle guidance (Corso et al. 2024) on a state x [T, 2]: for each
        molecule, Σ over ordered pairs i ≠ j of its conformers of exp(−‖u_i − u_j‖² / h), u the
        state's rows scaled to unit length, over all torsion rows, and h the median heuristic
        (median pair distance² / log n, as in SVGD), so that its negative gradient spreads each
        molecule's conformers apart."""
        # only the angle of a row is a torsion: unit rows make the push run along the circle
        # (on raw rows it also stretches them, which moved no torsion and lowered RMSD spread)
        blocks = (x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6)).split(self.sizes.tolist())
        total = x.new_zeros(())
        for members in self.molecules:
            states = torch.stack([blocks[i].reshape(-1) for i in members])
            d2 = (states[:, None] - states[None]).square().sum(-1)
            n = len(members)
            off = d2[~torch.eye(n, dtype=torch.bool, device=x.device)]
            h = (off.detach().median() / math.log(n)).clamp_min(1e-8)
            total = total + torch.exp(-off / h).sum()
        return total


class PairConv(MessagePassing):
    """Invariant message passing over heavy-atom pairs.

    Transforms: h [N, H] invariant → invariant; edge features e_ij [E, P + R] (pair features
    and an RBF of the distance) are invariant.  Permutation-equivariant in the atoms.

        m_ij = SiLU(A h_i + B h_j + C e_ij) · sigmoid(w · m̃_ij),   h_i' = LN(h_i + φ_h(h_i, Σ_j m_ij))

    The message is one layer, and A h, B h are computed per atom, not per pair: the pairs
    of a molecule grow as n², and the messages are what a sampling step spends its time on.
    """

    def __init__(self, hidden: int, edge_dim: int):
        super().__init__(aggr="add")
        self.source, self.target = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden, bias=False)
        self.edge = nn.Linear(edge_dim, hidden, bias=False)
        self.gate = nn.Linear(hidden, 1)
        self.update_mlp = mlp(2 * hidden, hidden, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        agg = self.propagate(edge_index, a=self.target(h), b=self.source(h), e=self.edge(edge_attr))
        return self.norm(h + self.update_mlp(torch.cat([h, agg], -1)))

    def message(self, a_i: Tensor, b_j: Tensor, e: Tensor) -> Tensor:
        # summed into the gathered rows (fresh [E, H] tensors), and while sampling (no gradient)
        # activated and gated in place too: the same numbers with fewer passes over memory
        # (sampling 20 conformers per molecule took 13% less CPU)
        sampling = not torch.is_grad_enabled()
        m = nn.functional.silu(a_i.add_(b_j).add_(e), inplace=sampling)
        gate = torch.sigmoid(self.gate(m))
        return m.mul_(gate) if sampling else m * gate


class TorsionNet(nn.Module):
    """Predicts, per torsion row of a state [T, 2], a vector in R² (ε, x₀ or v, as trained).

    Messages run between heavy atoms closer than `cutoff` (Å) in the conformer the state
    describes: all pairs would cost n² per molecule, most of them far apart.  With
    `conditions` > 0 each conformer's condition [B, conditions] (a source, see the module
    docstring) joins the time embedding."""

    def __init__(self, hidden: int = 64, layers: int = 4, rbf: int = 16, *, cutoff: float = 6.0,
                 conditions: int = 0):
        super().__init__()
        self.hidden, self.cutoff = hidden, cutoff
        self.register_buffer("centres", torch.linspace(0.0, cutoff, rbf), persistent=False)
        self.embed = mlp(ATOM_DIM, hidden, hidden)
        self.time = mlp(hidden, hidden, hidden)
        self.condition = nn.Linear(conditions, hidden, bias=False) if conditions else None
        self.convs = nn.ModuleList(PairConv(hidden, PAIR_DIM + rbf) for _ in range(layers))
        self.head = mlp(3 * hidden + 3 + 2 * PRIOR_TERMS + 5, hidden, hidden, 2)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, *,
                space: ConformerSpace) -> Tensor:
        if (cond is None) != (self.condition is None):
            raise ValueError("a conditioned TorsionNet needs a condition, an unconditioned one none")
        if space.copies(x) > 1:
            return space.per_copy(functools.partial(self, space=space), x, t, cond)
        dtype = self.centres.dtype
        pos = space.positions(x)[space.heavy].to(dtype)
        src, dst = space.pairs
        dist = (pos[src] - pos[dst]).norm(dim=-1, keepdim=True)
        near = dist[:, 0] < self.cutoff  # bonded and angle pairs always are (< 3 Å)
        width = self.cutoff / len(self.centres)
        rbf = torch.exp(-((dist[near] - self.centres) / width) ** 2)
        edge_index, edge_attr = space.pairs[:, near], torch.cat([space.pair_x[near].to(dtype), rbf], -1)
        temb = self.time(sinusoidal_embedding(t, self.hidden).to(dtype))
        if cond is not None:
            temb = temb + self.condition(cond.to(dtype))
        h = self.embed(space.atom_x.to(dtype)) + temb[space.atom_batch]
        for conv in self.convs:
            h = conv(h, edge_index, edge_attr)
        a, b, c, d = space.torsion_heavy.unbind(1)
        xr = x.to(dtype)
        features = [h[b] + h[c], h[a] + h[d], temb[space.batch], xr, xr.norm(dim=-1, keepdim=True),
                    *self.prior_features(space, state_to_angles(xr))]
        return self.head(torch.cat(features, -1)).to(x.dtype)

    @staticmethod
    def prior_features(space: ConformerSpace, theta: Tensor) -> list[Tensor]:
        """ETKDG's torsion potential for the head: its Fourier terms in our frame, its value
        E(θ) and slope at the state's angle θ, and −dE/dθ as a vector in the (cos, sin) plane
        (the direction ETKDG would turn the torsion).  asinh tames the 100s of its planarity
        terms."""
        k = torch.arange(1, PRIOR_TERMS + 1, device=theta.device, dtype=theta.dtype)
        cos, sin = (k * theta[:, None]).cos(), (k * theta[:, None]).sin()
        pc, ps = space.prior_cos.to(theta.dtype), space.prior_sin.to(theta.dtype)
        energy = (pc * cos + ps * sin).sum(1, keepdim=True)
        slope = (k * (ps * cos - pc * sin)).sum(1, keepdim=True)
        tangent = torch.stack([-theta.sin(), theta.cos()], -1)
        return [torch.asinh(pc), torch.asinh(ps), space.has_prior.to(theta.dtype),
                torch.asinh(energy), torch.asinh(slope), -torch.asinh(slope) * tangent]
