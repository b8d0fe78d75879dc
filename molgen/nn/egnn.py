"""EGNN (Satorras et al. 2021) as EDM's denoiser (Hoogeboom et al. 2022), on torch-geometric.

Each layer is an E(n)-equivariant graph convolution: messages are built from invariants only
(node features, squared distances, invariant edge attributes), node features are updated
from summed messages, and positions move along the relative vectors x_i − x_j with invariant
weights, so rotations, reflections, translations and atom permutations of the input act on
the output positions the same way and leave the output features unchanged.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from ..diffusion.spaces import POS, MoleculeSpace
from .graphs import graph_edges, network_inputs
from .layers import mlp


class EquivariantConv(MessagePassing):
    """One E-GCL layer (Satorras et al. 2021, eqs. 3–6) with EDM's edge gate and bounded
    coordinate update.

    Transforms: h [N, H] invariant → invariant; x [N, 3] E(3)-equivariant → equivariant
    (translations included); both permutation-equivariant in the atoms.

        m_ij = φ_e(h_i, h_j, ‖x_i − x_j‖², a_ij) · sigmoid(φ_a(·))    invariant message
        h_i' = h_i + φ_h(h_i, Σ_j m_ij)
        x_i' = x_i + Σ_j (x_i − x_j) / (‖x_i − x_j‖ + 1) · r tanh φ_x(m_ij)

    The normalised difference and the tanh bound each atom's step by r per neighbour, which
    keeps deep stacks stable at high noise (EDM, `coords_range` split over the layers).
    """

    def __init__(self, hidden: int, edge_dim: int, coords_range: float):
        super().__init__(aggr="add")
        self.hidden, self.coords_range = hidden, coords_range
        self.edge_mlp = nn.Sequential(mlp(2 * hidden + 1 + edge_dim, hidden, hidden), nn.SiLU())
        self.gate = nn.Sequential(nn.Linear(hidden, 1), nn.Sigmoid())
        self.node_mlp = mlp(2 * hidden, hidden, hidden)
        # EDM starts with near-zero coordinate steps (no bias, tiny weights): the untrained
        # stack leaves positions almost unchanged
        self.coord_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1, bias=False))
        nn.init.xavier_uniform_(self.coord_mlp[-1].weight, gain=0.001)

    def forward(self, h: Tensor, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> tuple[Tensor, Tensor]:
        msg, shift = self.propagate(edge_index, h=h, x=x, edge_attr=edge_attr).split([self.hidden, POS], -1)
        return h + self.node_mlp(torch.cat([h, msg], -1)), x + shift

    def message(self, h_i: Tensor, h_j: Tensor, x_i: Tensor, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        diff = x_i - x_j
        d2 = diff.square().sum(-1, keepdim=True)
        m = self.edge_mlp(torch.cat([h_i, h_j, d2, edge_attr], -1))
        m = m * self.gate(m)
        # the 1e-8 keeps the gradient of the norm finite for coincident atoms
        unit = diff / ((d2 + 1e-8).sqrt() + 1)
        return torch.cat([m, unit * self.coords_range * torch.tanh(self.coord_mlp(m))], -1)


class EGNN(nn.Module):
    """EGNN denoiser on molecule states x [N, 3 + F] of a `MoleculeSpace`.

    Input per atom: its features, the time embedding of its molecule (sinusoidal, then an
    MLP) and optionally its molecule's condition vector [B, cond_dim].  Edges carry the
    squared input distances as an attribute beside each layer's current ones (as EDM).
    Output: the position displacement x_L − x_0 and the features of a final MLP, projected
    onto the space (CoM-free positions) — ε, or whichever parameterization it is trained on.

    cutoff None: fully connected molecules; a float: the radius graph of the noisy input.
    """

    def __init__(self, num_features: int, hidden: int = 128, layers: int = 9, *, cond_dim: int = 0,
                 cutoff: float | None = None, coords_range: float = 15.0):
        super().__init__()
        self.hidden, self.cond_dim, self.cutoff = hidden, cond_dim, cutoff
        self.time = mlp(hidden, hidden, hidden)
        self.embed = nn.Linear(num_features + hidden + cond_dim, hidden)
        self.convs = nn.ModuleList(EquivariantConv(hidden, 1, coords_range / layers) for _ in range(layers))
        self.out = nn.Sequential(nn.SiLU(), mlp(hidden, hidden, num_features))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, *,
                space: MoleculeSpace) -> Tensor:
        index, num, pos, inputs = network_inputs(
            x, t, cond, space=space, time_mlp=self.time, time_dim=self.hidden,
            cond_dim=self.cond_dim, dtype=self.embed.weight.dtype)
        edges = graph_edges(pos, index, num, self.cutoff)
        h = self.embed(inputs)
        d2_input = (pos[edges[0]] - pos[edges[1]]).square().sum(-1, keepdim=True)
        y = pos
        for conv in self.convs:
            h, y = conv(h, y, edges, d2_input)
        return space.project(torch.cat([y - pos, self.out(h)], -1)).to(x.dtype)
