"""A denoiser of protein Cα traces: EGNN layers on a sequence-aware nearest-neighbour graph,
with a reflection-odd input so that it is SE(3)- but not E(3)-equivariant.

Why not E(3): an E(3)-equivariant network gives p(x) = p(mirror x), so half of its helices
would be left-handed, while natural helices are right-handed (Cα virtual dihedral ≈ +50°).
Each residue therefore sees the signed virtual dihedral of the noisy trace at its position
(sin α flips sign under a reflection; cos α and every distance do not): rotations and
translations act on the output as on the input, a mirror image does not give the mirrored
output.
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


def chain_edges(pos: Tensor, index: Tensor, rank: Tensor, *, num_graphs: int, neighbours: int,
                sequence: int = 2) -> Tensor:
    """Edges j → i [2, E] within each chain: i's `neighbours` nearest residues in space and
    every residue within `sequence` positions of it along the chain (rank: a residue's
    position in its chain).  Plain torch: all pairs of a chain, sorted by distance."""
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
    return torch.stack([src[keep], dst[keep]])


def local_geometry(pos: Tensor, rank: Tensor, sizes: Tensor) -> Tensor:
    """[N, LOCAL_FEATURES]: at residue i the virtual dihedral α of (i − 1, i, i + 1, i + 2) as
    (cos, sin) and the virtual angle τ at i as cos, each 0 with its flag 0 where the chain
    ends; rows are residues in chain order (rank) of chains of the given sizes [N]."""
    rows = torch.arange(len(pos), device=pos.device)
    has_tau = (rank >= 1) & (rank <= sizes - 2)
    has_alpha = (rank >= 1) & (rank <= sizes - 3)
    # neighbours along the chain; rows past a chain's end are masked by the flags
    a, b, c, d = (pos[(rows + k).clamp(0, len(pos) - 1)] for k in (-1, 0, 1, 2))
    b0, b1, b2 = b - a, c - b, d - c
    n1, n2 = torch.linalg.cross(b0, b1), torch.linalg.cross(b1, b2)
    m = torch.linalg.cross(n1, b1 / (b1.norm(dim=-1, keepdim=True) + 1e-8))
    # right-handed positive, as molgen.metrics.backbones.dihedrals
    alpha = -torch.atan2((m * n2).sum(-1), (n1 * n2).sum(-1))
    u, v = a - b, c - b
    cos_tau = (u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1) + 1e-8)
    fa, ft = has_alpha.to(pos.dtype), has_tau.to(pos.dtype)
    return torch.stack([alpha.cos() * fa, alpha.sin() * fa, cos_tau * ft, fa, ft], -1)


class BackboneNet(nn.Module):
    """Denoiser of Cα traces, states x [N, 3] of a `MoleculeSpace` whose rows are the residues
    of each chain in order (positions scaled to O(1)).

    Input per residue: the local geometry of the noisy trace (`local_geometry`, reflection-
    odd), its relative position along the chain (sinusoidal), the time embedding of its chain
    and optionally the chain's condition [B, cond_dim].  Edges (`chain_edges`) carry the
    offset along the chain (learned, clipped to ±max_offset) and the squared input distance.
    Output: the displacement of EGNN layers, projected onto the CoM-free space.
    """

    def __init__(self, hidden: int = 64, layers: int = 4, neighbours: int = 16, *,
                 max_offset: int = 32, cond_dim: int = 0, coords_range: float = 1.0):
        super().__init__()
        self.hidden, self.neighbours, self.max_offset, self.cond_dim = hidden, neighbours, max_offset, cond_dim
        self.time = mlp(hidden, hidden, hidden)
        self.embed = nn.Linear(LOCAL_FEATURES + hidden + hidden + cond_dim, hidden)
        self.offset = nn.Embedding(2 * max_offset + 1, hidden // 4)
        self.convs = nn.ModuleList(EquivariantConv(hidden, hidden // 4 + 1, coords_range / layers)
                                   for _ in range(layers))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, *,
                space: MoleculeSpace) -> Tensor:
        if (cond is None) != (self.cond_dim == 0):
            raise ValueError(f"this network takes {'a' if self.cond_dim else 'no'} condition "
                             f"(cond_dim={self.cond_dim})")
        dtype = self.embed.weight.dtype
        index, num = space.index(x), space.batch_size(x)
        pos = x.to(dtype)
        rank = atom_ranks(index, num)
        sizes = torch.bincount(index, minlength=num)[index]
        where = sinusoidal_embedding(rank.to(dtype) / 1000.0, self.hidden).to(dtype)
        per_chain = [self.time(sinusoidal_embedding(t, self.hidden).to(dtype))]
        if cond is not None:
            per_chain.append(cond.to(dtype).reshape(num, -1))
        h = self.embed(torch.cat([local_geometry(pos, rank, sizes), where,
                                  torch.cat(per_chain, -1)[index]], -1))
        edges = chain_edges(pos, index, rank, num_graphs=num, neighbours=self.neighbours)
        offset = (rank[edges[0]] - rank[edges[1]]).clamp(-self.max_offset, self.max_offset)
        d2 = (pos[edges[0]] - pos[edges[1]]).square().sum(-1, keepdim=True)
        edge_attr = torch.cat([self.offset(offset + self.max_offset), d2], -1)
        y = pos
        for conv in self.convs:
            h, y = conv(h, y, edges, edge_attr)
        return space.project(y - pos).to(x.dtype)
