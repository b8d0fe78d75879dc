"""NequIP-style tensor-product network (Batzner et al. 2022) as a molecule denoiser, on e3nn:
a drop-in for `molgen.nn.egnn.EGNN`, with the same call net(x, t, cond=None, *, space) and the
same output [ε of the positions (CoM-free), features].

Where the EGNN passes invariants only (distances) and moves positions along relative
vectors, this network carries equivariant features: each atom holds irreducible
representations (irreps) of O(3), scalars 0e, vectors 1o and rank-2 tensors 2e by default,
and a convolution couples a neighbour's features with the spherical harmonics of their
relative position by Clebsch–Gordan tensor products, weighted per edge by an MLP of the
distance.  Gate nonlinearities act on scalars directly and scale each higher irrep by a
scalar gate, so every layer commutes with rotations and reflections.  The position output is
a true vector (1o, odd under inversion) and the feature outputs are true scalars (0e): the
network is E(3)-equivariant, reflections included, which a pseudovector (1e) output would not
be.

Notation (e3nn's): "16x0e + 8x1o" is 16 scalars and 8 vectors; the letter is the parity
(e: even, o: odd under inversion).  e3nn's 1o is ordered (x, y, z), so a 1o channel is a
Cartesian vector as it stands (D¹(R) = R) and the positions need no change of basis.
"""
from __future__ import annotations

import torch
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from e3nn.nn import FullyConnectedNet, Gate
from torch import Tensor, nn

from ..diffusion.spaces import MoleculeSpace, segment_sum
from .graphs import graph_edges, network_inputs

SCALAR_ACTIVATIONS = {1: nn.functional.silu, -1: torch.tanh}
"""By the parity of the scalar: an odd scalar (0o) changes sign under inversion, so only an
odd function (tanh) keeps it odd; even scalars take SiLU as the EGNN does."""


def polynomial_envelope(r: Tensor, p: int = 6) -> Tensor:
    """NequIP's cutoff envelope of r = distance / cutoff: 1 at 0, falling to 0 at r = 1 with
    its first two derivatives, 0 beyond.  Messages scaled by it fade out smoothly as atoms
    leave the radius graph, so the denoiser stays continuous in the positions (which the ODE
    samplers and the likelihood need)."""
    r = r.clamp(max=1.0)
    return (1 - (p + 1) * (p + 2) / 2 * r**p + p * (p + 2) * r ** (p + 1)
            - p * (p + 1) / 2 * r ** (p + 2))


class GatedConv(nn.Module):
    """One NequIP interaction block: node irreps `irreps_in` → `irreps_out`.

        m_i  = Σ_{j→i} TP( W₁ h_j, Y(x_j − x_i); R(‖x_j − x_i‖) ) / √avg_neighbors
        h_i' = Gate( W₂ m_i + W_sc h_i )

    Y: the spherical harmonics of the relative position (edge attributes `irreps_sh`); TP:
    the tensor product of each neighbour channel u with each harmonic, one weight per path
    and channel ("uvu"), the weights R given per edge by an MLP of the radial basis of the
    distance; W₁, W₂, W_sc: equivariant linear maps (mix channels of the same irrep only).

    The output keeps those irreps of `irreps_hidden` that the product of `irreps_in` with the
    harmonics can reach (a first layer on scalars reaches no 1e, say); the gate needs one
    extra scalar (0e) per gated irrep, so W₂ produces `gate.irreps_in`.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_hidden: o3.Irreps, *,
                 num_basis: int, radial_hidden: int, avg_neighbors: float):
        super().__init__()
        self.irreps_in = irreps_in
        self.avg_neighbors = avg_neighbors
        reachable = o3.Irreps([(mul, ir) for mul, ir in irreps_hidden
                               if any(ir in ir_in * ir_sh for _, ir_in in irreps_in for _, ir_sh in irreps_sh)])
        scalars = o3.Irreps([(mul, ir) for mul, ir in reachable if ir.l == 0])
        gated = o3.Irreps([(mul, ir) for mul, ir in reachable if ir.l > 0])
        self.gate = Gate(scalars, [SCALAR_ACTIVATIONS[ir.p] for _, ir in scalars],
                         o3.Irreps(f"{gated.num_irreps}x0e"), [torch.sigmoid], gated)
        self.irreps_out = self.gate.irreps_out

        irreps_mid, instructions = [], []
        for i, (mul, ir_in) in enumerate(irreps_in):
            for j, (_, ir_sh) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out in self.gate.irreps_in:
                        instructions.append((i, j, len(irreps_mid), "uvu", True))
                        irreps_mid.append((mul, ir_out))
        self.irreps_mid = o3.Irreps(irreps_mid)

        self.linear_in = o3.Linear(irreps_in, irreps_in)
        self.tp = o3.TensorProduct(irreps_in, irreps_sh, self.irreps_mid, instructions,
                                   shared_weights=False, internal_weights=False)
        self.radial = FullyConnectedNet([num_basis, radial_hidden, self.tp.weight_numel], nn.functional.silu)
        self.linear_out = o3.Linear(self.irreps_mid, self.gate.irreps_in)
        self.self_connection = o3.Linear(irreps_in, self.gate.irreps_in)

    def forward(self, h: Tensor, edges: Tensor, sh: Tensor, basis: Tensor) -> Tensor:
        src, dst = edges
        messages = self.tp(self.linear_in(h)[src], sh, self.radial(basis))
        m = segment_sum(messages, dst, len(h)) / self.avg_neighbors**0.5
        return self.gate(self.linear_out(m) + self.self_connection(h))


class NequIP(nn.Module):
    """Tensor-product denoiser on molecule states x [N, 3 + F] of a `MoleculeSpace`.

    Irreps, in order:
      input      `scalars`x0e: the atom's features, the time embedding of its molecule
                 (sinusoidal, then an MLP) and optionally the molecule's condition vector
                 [B, cond_dim], mixed by a linear layer (all invariant);
      edges      `irreps_sh` = 0e + 1o + 2e (lmax = 2): spherical harmonics of x_j − x_i;
      hidden     `irreps_hidden` (default 32x0e + 8x1o + 8x2e) after each of `layers`
                 gated convolutions (`GatedConv`);
      output     `irreps_out` = 1x1o + Fx0e: the position ε (projected onto the CoM-free
                 subspace) and the features, by an equivariant linear map.

    Radial basis: `num_basis` Gaussians over [0, r_max] (r_max = the cutoff when one is
    given), defined with and without a cutoff; messages from atoms beyond r_max fade, so
    for fully connected molecules r_max should cover their diameter (10 Å covers QM9).
    cutoff None: fully connected molecules; a float: the radius graph of the noisy input,
    with the smooth `polynomial_envelope` on the edge attributes.
    `avg_neighbors` normalizes the sum over neighbours (17 for an 18-atom molecule fully
    connected).

    Precision: e3nn computes its Clebsch–Gordan constants in the default dtype at
    construction, so for float64 build the network under torch.set_default_dtype(float64);
    `.double()` of a float32 build keeps float32-rounded constants and is equivariant only
    to ~1e-10.
    """

    def __init__(self, num_features: int, irreps_hidden: str = "32x0e + 8x1o + 8x2e", layers: int = 3,
                 *, lmax: int = 2, cond_dim: int = 0, cutoff: float | None = None, r_max: float = 10.0,
                 num_basis: int = 8, radial_hidden: int = 32, time_dim: int = 32,
                 avg_neighbors: float = 16.0):
        super().__init__()
        self.irreps_hidden = o3.Irreps(irreps_hidden)
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.irreps_out = o3.Irreps(f"1x1o + {num_features}x0e")
        scalars = self.irreps_hidden.count("0e")
        if scalars == 0:
            raise ValueError(f"irreps_hidden={self.irreps_hidden} needs scalars (0e) for the input and the gates")
        self.cond_dim, self.cutoff, self.time_dim, self.num_basis = cond_dim, cutoff, time_dim, num_basis
        self.r_max = r_max if cutoff is None else cutoff

        # the module, not o3.spherical_harmonics: torch.compile traces the module
        self.spherical_harmonics = o3.SphericalHarmonics(self.irreps_sh, normalize=True, normalization="component")
        self.time = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.embed = nn.Linear(num_features + time_dim + cond_dim, scalars)
        irreps = o3.Irreps(f"{scalars}x0e")
        self.convs = nn.ModuleList()
        for _ in range(layers):
            self.convs.append(GatedConv(irreps, self.irreps_sh, self.irreps_hidden,
                                        num_basis=num_basis, radial_hidden=radial_hidden,
                                        avg_neighbors=avg_neighbors))
            irreps = self.convs[-1].irreps_out
        if o3.Irrep("1o") not in irreps:
            raise ValueError(f"the last layer's irreps {irreps} have no vector (1o) for the positions; "
                             f"add 1o to irreps_hidden and use layers ≥ 1, lmax ≥ 1")
        self.out = o3.Linear(irreps, self.irreps_out)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, *,
                space: MoleculeSpace) -> Tensor:
        index, num, pos, inputs = network_inputs(
            x, t, cond, space=space, time_mlp=self.time, time_dim=self.time_dim,
            cond_dim=self.cond_dim, dtype=self.embed.weight.dtype)
        edges = graph_edges(pos, index, num, self.cutoff)
        rel = pos[edges[0]] - pos[edges[1]]
        # the 1e-8 keeps the gradient of the norm finite for coincident atoms
        dist = (rel.square().sum(-1) + 1e-8).sqrt()
        sh = self.spherical_harmonics(rel)
        if self.cutoff is not None:
            sh = sh * polynomial_envelope(dist / self.cutoff)[:, None]  # TP is linear in sh
        basis = soft_one_hot_linspace(dist, 0.0, self.r_max, self.num_basis, basis="gaussian", cutoff=False)

        h = self.embed(inputs)
        for conv in self.convs:
            h = conv(h, edges, sh, basis)
        return space.project(self.out(h)).to(x.dtype)
