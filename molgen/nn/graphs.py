"""Graphs over the atoms of a batch of molecules, and what a molecule network reads from a
state.

Edges are edge_index [2, E] in torch-geometric's convention (row 0 the source j, row 1 the
target i of message j → i), never across molecules; plain torch, without pyg-lib or
torch-cluster.  The network of a `MoleculeSpace` batch reads the graph index and molecule
count from the space (`index(x)`, `batch_size(x)`), which understands the k-fold repeats
that guidance makes, so a guided batch needs no second space.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..diffusion.spaces import POS, MoleculeSpace
from .layers import sinusoidal_embedding


def network_inputs(x: Tensor, t: Tensor, cond: Tensor | None, *, space: MoleculeSpace,
                   time_mlp, time_dim: int, cond_dim: int, dtype: torch.dtype):
    """What a molecule denoiser reads from a state: the graph index and molecule count, the
    positions, and per atom [features | its molecule's time embedding | its condition].

    The time goes in as a sinusoidal embedding followed by `time_mlp`; the condition [B, ·]
    is required exactly when the network was built with cond_dim > 0.
    """
    if (cond is None) != (cond_dim == 0):
        raise ValueError(f"this network takes {'a' if cond_dim else 'no'} condition "
                         f"(cond_dim={cond_dim})")
    index, num = space.index(x), space.batch_size(x)
    pos, features = x[:, :POS].to(dtype), x[:, POS:].to(dtype)
    per_graph = [time_mlp(sinusoidal_embedding(t, time_dim).to(dtype))]
    if cond is not None:
        per_graph.append(cond.to(dtype).reshape(num, -1))
    return index, num, pos, torch.cat([features, torch.cat(per_graph, -1)[index]], -1)


def fully_connected_edges(index: Tensor, num_graphs: int) -> Tensor:
    """Every ordered pair of distinct atoms of the same molecule: Σ n_g (n_g − 1) edges."""
    # in sorted order the molecules are contiguous blocks; atom p of molecule g (rows
    # starts[g] … starts[g] + n_g − 1) pairs with every row of its block
    order = torch.argsort(index, stable=True)
    sizes = torch.bincount(index, minlength=num_graphs)
    starts = torch.cumsum(sizes, 0) - sizes
    n = sizes[index[order]]
    src = torch.repeat_interleave(torch.arange(len(index), device=index.device), n)
    within = torch.arange(len(src), device=index.device) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
    dst = torch.repeat_interleave(starts[index[order]], n) + within
    keep = src != dst
    return torch.stack([order[src[keep]], order[dst[keep]]])


def radius_edges(pos: Tensor, index: Tensor, num_graphs: int, cutoff: float) -> Tensor:
    """Ordered pairs of distinct atoms of the same molecule closer than `cutoff`.

    Brute force over all pairs of each molecule: O(Σ n_g²) distances, which are cheap beside
    the O(edges) messages the cutoff saves in the network.  No cap on the neighbour count:
    a cap would keep an arbitrary subset and break permutation equivariance.
    """
    edges = fully_connected_edges(index, num_graphs)
    d2 = (pos[edges[0]] - pos[edges[1]]).square().sum(-1)
    return edges[:, d2 < cutoff**2]


def graph_edges(pos: Tensor, index: Tensor, num_graphs: int, cutoff: float | None = None) -> Tensor:
    """Fully connected molecules (small molecules, as EDM) or, with a cutoff, the radius graph
    (large ones)."""
    if cutoff is None:
        return fully_connected_edges(index, num_graphs)
    return radius_edges(pos, index, num_graphs, cutoff)
