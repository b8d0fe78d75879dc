"""A denoiser of protein Cα traces: EGNN layers on a sequence-aware nearest-neighbour graph,
with a reflection-odd input so that it is SE(3)- but not E(3)-equivariant.

Why not E(3): an E(3)-equivariant network gives p(x) = p(mirror x), so half of its helices
would be left-handed, while natural helices are right-handed (Cα virtual dihedral ≈ +50°).
Each residue therefore sees the signed virtual dihedral of the noisy trace at its position
(sin α flips sign under a reflection; cos α and every distance do not), and part of its
output is read out in the residue's chain frame (`chain_frames`), whose third axis is a
cross product (a pseudovector): rotations and translations act on the output as on the
input, a mirror image does not give the mirrored output.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..diffusion.spaces import MoleculeSpace, atom_ranks
from .egnn import EquivariantConv
from .graphs import fully_connected_edges
from .layers import mlp, sinusoidal_embedding

LOCAL_FEATURES = 5
"""Per residue: cos α, sin α, cos τ of the noisy trace, and whether α and τ are defined."""
DISTANCE_CENTRES = torch.linspace(2.0, 20.0, 24)
"""Centres (Å) of the Gaussian distance features on edges, one spacing (0.78 Å) wide: a
0.2 Å change of a bond moves them by ~0.3, where a raw squared distance in nm² would move
by 0.02."""
MOTIF_COLUMNS = 4
"""Per residue position of a motif condition: flag (1: given), x, y, z."""


def chain_edges(pos: Tensor, index: Tensor, rank: Tensor, *, num_graphs: int, neighbours: int,
                sequence: int = 2, linked: Tensor | None = None) -> Tensor:
    """Edges j → i [2, E] within each chain: i's `neighbours` nearest residues in space,
    every residue within `sequence` positions of it along the chain (rank: a residue's
    position in its chain) and, with linked [N] bool, every pair of linked residues (a
    motif).  Plain torch: all pairs of a chain, sorted by distance."""
    src, dst = fully_connected_edges(index, num_graphs)
    d2 = (pos[src] - pos[dst]).square().sum(-1)
    # stable sorts: by distance, then by target, so each target's pairs run nearest first
    order = torch.argsort(d2, stable=True)
    order = order[torch.argsort(dst[order], stable=True)]
    counts = torch.bincount(dst, minlength=len(pos))
    starts = torch.cumsum(counts, 0) - counts
    nth = torch.empty_like(order)
    nth[order] = torch.arange(len(order), device=pos.device) - starts[dst[order]]
    keep = (nth < neighbours) | ((rank[src] - rank[dst]).abs() <= sequence)
    if linked is not None:
        keep |= linked[src] & linked[dst]
    return torch.stack([src[keep], dst[keep]])


def local_geometry(pos: Tensor, rank: Tensor, sizes: Tensor, known: Tensor | None = None) -> Tensor:
    """[N, LOCAL_FEATURES]: at residue i the virtual dihedral α of (i − 1, i, i + 1, i + 2) as
    (cos, sin) and the virtual angle τ at i as cos, each 0 with its flag 0 where the chain
    ends or (with known [N] bool) where one of its residues is not known; rows are residues
    in chain order (rank) of chains of the given sizes [N]."""
    rows = torch.arange(len(pos), device=pos.device)
    shifted = [(rows + k).clamp(0, len(pos) - 1) for k in (-1, 0, 1, 2)]
    has_tau = (rank >= 1) & (rank <= sizes - 2)
    has_alpha = (rank >= 1) & (rank <= sizes - 3)
    if known is not None:
        has_tau = has_tau & known[shifted[0]] & known[shifted[1]] & known[shifted[2]]
        has_alpha = has_alpha & has_tau & known[shifted[3]]
    # neighbours along the chain; rows past a chain's end are masked by the flags
    a, b, c, d = (pos[k] for k in shifted)
    b0, b1, b2 = b - a, c - b, d - c
    n1, n2 = torch.linalg.cross(b0, b1), torch.linalg.cross(b1, b2)
    m = torch.linalg.cross(n1, b1 / (b1.norm(dim=-1, keepdim=True) + 1e-8))
    # right-handed positive, as molgen.metrics.backbones.dihedrals
    alpha = -torch.atan2((m * n2).sum(-1), (n1 * n2).sum(-1))
    u, v = a - b, c - b
    cos_tau = (u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1) + 1e-8)
    fa, ft = has_alpha.to(pos.dtype), has_tau.to(pos.dtype)
    return torch.stack([alpha.cos() * fa, alpha.sin() * fa, cos_tau * ft, fa, ft], -1)


def distance_features(d2: Tensor, angstrom: float) -> Tensor:
    """[E, len(DISTANCE_CENTRES)] Gaussian features of distances given squared [E, 1], in
    state units of `angstrom` per Å."""
    centres = DISTANCE_CENTRES.to(d2) * angstrom
    width = centres[1] - centres[0]
    return torch.exp(-((d2.clamp_min(0).sqrt() - centres) / width).square())


def chain_frames(pos: Tensor, rank: Tensor, sizes: Tensor) -> Tensor:
    """[N, 3, 3]: per residue i the unit vectors to i + 1 and to i − 1 along the chain and
    the unit normal of the two, each 0 where the chain ends.  The first two rotate with the
    trace and mirror with it; the normal (a cross product) rotates but does not mirror."""
    rows = torch.arange(len(pos), device=pos.device)
    ahead, behind = pos[(rows + 1).clamp(max=len(pos) - 1)], pos[(rows - 1).clamp(min=0)]
    u = (ahead - pos) * (rank <= sizes - 2).to(pos.dtype)[:, None]
    v = (behind - pos) * (rank >= 1).to(pos.dtype)[:, None]
    w = torch.linalg.cross(u, v)
    return torch.stack([a / (a.norm(dim=-1, keepdim=True) + 1e-6) for a in (u, v, w)], 1)


class BackboneNet(nn.Module):
    """Denoiser of Cα traces, states x [N, 3] of a `MoleculeSpace` whose rows are the residues
    of each chain in order (positions scaled to O(1)).

    Input per residue: the local geometry of the noisy trace (`local_geometry`, reflection-
    odd), its relative position along the chain (sinusoidal), the time embedding of its chain
    and optionally the chain's condition.  Edges (`chain_edges`) carry the offset along the
    chain (learned, clipped to ±max_offset) and the input distance (`distance_features`).

    The condition of a chain [B, cond_dim + MOTIF_COLUMNS · motif_length] is its global
    condition (cond_dim columns) followed, for a network built with motif_length > 0, by a
    motif block: per residue position (flag, x, y, z), the flag 1 where the residue's
    position is given (the motif, in any frame).  The network reads the motif through
    invariants only: the motif's own local geometry at its residues, and the motif distances
    on edges between all motif residues (added to the graph).  All zeros is the null
    condition of classifier-free guidance.

    Output: a displacement Δ, projected onto the CoM-free space: that of the EGNN layers
    (each residue's step bounded by coords_range / layers per neighbour) plus a linear
    read-out of the final features in the residue's chain frame.  The backbone task reads it
    as x̂_0 = α(t) x_t + Δ (molgen.proteins.task), a v-parameterization without v's 1/σ:
    near t = 0 the best Δ moves the noisy trace onto natural bond lengths and angles, a
    repair of the size of the noise, where v̂ would have to be that repair divided by σ(t).
    """

    def __init__(self, hidden: int = 64, layers: int = 4, neighbours: int = 16, *,
                 max_offset: int = 32, cond_dim: int = 0, motif_length: int = 0,
                 coords_range: float = 15.0, angstrom: float = 0.25):
        super().__init__()
        self.hidden, self.neighbours, self.max_offset = hidden, neighbours, max_offset
        self.angstrom = angstrom
        self.cond_dim, self.motif_length = cond_dim, motif_length
        motif_in = 1 + LOCAL_FEATURES if motif_length else 0
        self.time = mlp(hidden, hidden, hidden)
        self.embed = nn.Linear(LOCAL_FEATURES + hidden + hidden + cond_dim + motif_in, hidden)
        self.offset = nn.Embedding(2 * max_offset + 1, hidden // 4)
        edge_dim = hidden // 4 + len(DISTANCE_CENTRES) + (1 + len(DISTANCE_CENTRES) if motif_length else 0)
        self.convs = nn.ModuleList(EquivariantConv(hidden, edge_dim, coords_range / layers)
                                   for _ in range(layers))
        self.frame_out = nn.Linear(hidden, 3)
        nn.init.zeros_(self.frame_out.weight)
        nn.init.zeros_(self.frame_out.bias)

    @property
    def cond_columns(self) -> int:
        """Columns of the condition a chain carries (0: the network takes none)."""
        return self.cond_dim + MOTIF_COLUMNS * self.motif_length

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, *,
                space: MoleculeSpace) -> Tensor:
        if (cond is None) != (self.cond_columns == 0):
            raise ValueError(f"this network takes {'a' if self.cond_columns else 'no'} condition "
                             f"({self.cond_columns} columns)")
        dtype = self.embed.weight.dtype
        index, num = space.index(x), space.batch_size(x)
        pos = x.to(dtype)
        rank = atom_ranks(index, num)
        sizes = torch.bincount(index, minlength=num)[index]
        where = sinusoidal_embedding(rank.to(dtype) / 1000.0, self.hidden).to(dtype)
        per_chain = [self.time(sinusoidal_embedding(t, self.hidden).to(dtype))]
        per_residue = [local_geometry(pos, rank, sizes), where]
        linked = None
        if cond is not None:
            cond = cond.to(dtype).reshape(num, -1)
            per_chain.append(cond[:, :self.cond_dim])
        if self.motif_length:
            if int(rank.max()) >= self.motif_length:
                raise ValueError(f"chains of up to {self.motif_length} residues, got {int(rank.max()) + 1}")
            motif = cond[:, self.cond_dim:].reshape(num, self.motif_length, MOTIF_COLUMNS)[index, rank]
            linked, motif_pos = motif[:, 0] > 0.5, motif[:, 1:]
            per_residue += [motif[:, :1], local_geometry(motif_pos, rank, sizes, linked)]
        h = self.embed(torch.cat(per_residue + [torch.cat(per_chain, -1)[index]], -1))
        edges = chain_edges(pos, index, rank, num_graphs=num, neighbours=self.neighbours,
                            linked=linked)
        src, dst = edges
        offset = (rank[src] - rank[dst]).clamp(-self.max_offset, self.max_offset)
        d2 = (pos[src] - pos[dst]).square().sum(-1, keepdim=True)
        edge_attr = [self.offset(offset + self.max_offset), distance_features(d2, self.angstrom)]
        if linked is not None:
            pair = (linked[src] & linked[dst]).to(dtype)[:, None]
            motif_d2 = (motif_pos[src] - motif_pos[dst]).square().sum(-1, keepdim=True)
            edge_attr += [pair, pair * distance_features(motif_d2, self.angstrom)]
        edge_attr = torch.cat(edge_attr, -1)
        y = pos
        for conv in self.convs:
            h, y = conv(h, y, edges, edge_attr)
        framed = torch.einsum("nk,nkd->nd", self.frame_out(h), chain_frames(pos, rank, sizes))
        return space.project(y - pos + framed).to(x.dtype)
