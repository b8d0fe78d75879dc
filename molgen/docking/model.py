"""The pose denoiser: a network over the ligand in its noisy pose and the pocket around it.

Nodes are the ligand's heavy atoms (features and pairs of the conformer model,
molgen.conformers.featurize) and the pocket's atoms (element and residue, fixed: they are
read, never updated).  Each layer passes messages between ligand atoms (`PairConv`) and from
pocket atoms within `contact` Å to ligand atoms (`PocketConv`).  Invariant features go in;
what comes out must transform as the state does under a rigid motion Q of the complex:

- τ and the rotation's columns r₁, r₂ rotate with Q (vectors): they are predicted as invariant
  coefficients times a basis of vectors — the state's own τ, r₁, r₂, r₁ × r₂, and K learned
  "forces" F_k = mean_i Σ_j φ_k(m_ij) (x_i − y_j)/|x_i − y_j| on the ligand from the pocket and
  their torques T_k = mean_i (x_i − c) × f_ik (and T_k × r_j, the columns turned about them);
- each torsion is invariant: predicted from its atoms' features, its state row, ETKDG's torsion
  potential (as the conformer model does) and the K torques of the pocket forces on the
  torsion's moving side about its bond.

Cross products make the network SE(3)- but not E(3)-equivariant: a mirrored complex is another
complex (the ligand keeps its chirality in every pose), so nothing forces mirror symmetry.
The condition c [B, 1] says whether the pocket is there (1) or dropped (0: no pocket messages,
the ligand-only pose prior that classifier-free guidance contrasts with).
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from ..conformers.featurize import ATOM_DIM, PAIR_DIM, PRIOR_TERMS
from ..conformers.model import PairConv, TorsionNet
from ..data.proteins import AMINO_ACIDS
from ..diffusion.spaces import segment_sum
from ..nn.layers import mlp, sinusoidal_embedding
from .pose import PoseSpace
from .receptor import Receptor

NULL_CONDITION = (0.0,)
"""The condition of a dropped pocket; a present one is (1,)."""
POCKET_ELEMENTS = ("C", "N", "O", "S")
BACKBONE = frozenset({"N", "CA", "C", "O", "OXT"})
POCKET_DIM = len(POCKET_ELEMENTS) + 1 + len(AMINO_ACIDS) + 1 + 1
"""Element (C, N, O, S, other: metals and the rest), residue type (or none: an ion), backbone."""


def pocket_features(receptor: Receptor) -> Tensor:
    """Features [N, POCKET_DIM] of a receptor's atoms (one-hot element and residue, backbone)."""
    x = torch.zeros((len(receptor), POCKET_DIM))
    for i, (el, res, name) in enumerate(zip(receptor.element, receptor.residue, receptor.atom_name)):
        x[i, POCKET_ELEMENTS.index(el) if el in POCKET_ELEMENTS else len(POCKET_ELEMENTS)] = 1
        offset = len(POCKET_ELEMENTS) + 1
        x[i, offset + (AMINO_ACIDS.index(res) if res in AMINO_ACIDS else len(AMINO_ACIDS))] = 1
        x[i, -1] = float(name in BACKBONE and res in AMINO_ACIDS)
    return x


def rbf(d: Tensor, centres: Tensor) -> Tensor:
    width = centres[-1] / len(centres)
    return torch.exp(-((d - centres) / width) ** 2)


class PocketConv(MessagePassing):
    """Messages from pocket atoms (fixed embeddings p [P, H]) to ligand atoms h [N, H] along
    contacts (pocket j → ligand i) with invariant edge features e_ij [E, R]:

        m_ij = SiLU(A h_i + B p_j + C e_ij) · sigmoid(w · m̃_ij),   h_i' = LN(h_i + φ(h_i, Σ_j m_ij))

    Returns the new h and the messages (the output head reads forces from them)."""

    def __init__(self, hidden: int, edge_dim: int):
        super().__init__(aggr="add", flow="source_to_target")
        self.target, self.source = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden, bias=False)
        self.edge = nn.Linear(edge_dim, hidden, bias=False)
        self.gate = nn.Linear(hidden, 1)
        self.update_mlp = mlp(2 * hidden, hidden, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: Tensor, p: Tensor, edge_index: Tensor, edge_attr: Tensor) -> tuple[Tensor, Tensor]:
        j, i = edge_index  # pocket atom j → ligand atom i
        m = nn.functional.silu(self.target(h)[i] + self.source(p)[j] + self.edge(edge_attr))
        m = m * torch.sigmoid(self.gate(m))
        agg = segment_sum(m, i, len(h))
        return self.norm(h + self.update_mlp(torch.cat([h, agg], -1))), m


class DockingNet(nn.Module):
    """Predicts, for a pose state [R, 1] (see molgen.docking.pose), a tensor of its shape
    (ε, x₀ or v, as trained).  See the module docstring."""

    def __init__(self, hidden: int = 64, layers: int = 4, *, rbf_size: int = 16, cutoff: float = 6.0,
                 contact: float = 6.0, forces: int = 8):
        super().__init__()
        self.hidden, self.cutoff, self.contact, self.forces = hidden, cutoff, contact, forces
        self.register_buffer("centres", torch.linspace(0.0, cutoff, rbf_size), persistent=False)
        self.register_buffer("contact_centres", torch.linspace(0.0, contact, rbf_size), persistent=False)
        self.embed = mlp(ATOM_DIM, hidden, hidden)
        self.embed_pocket = mlp(POCKET_DIM, hidden, hidden)
        self.time = mlp(hidden, hidden, hidden)
        self.ligand_convs = nn.ModuleList(PairConv(hidden, PAIR_DIM + rbf_size) for _ in range(layers))
        self.pocket_convs = nn.ModuleList(PocketConv(hidden, rbf_size) for _ in range(layers))
        self.force = nn.Linear(hidden, forces)
        # coefficients: τ from (τ, F_k); each column from (r1, r2, r1×r2, T_k, T_k × r_j)
        self.rigid_head = mlp(2 * hidden + 6, hidden, (1 + forces) + 2 * (3 + 2 * forces))
        self.torsion_head = mlp(3 * hidden + 3 + 2 * PRIOR_TERMS + 5 + forces, hidden, hidden, 2)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None, *, space: PoseSpace) -> Tensor:
        if space.copies(x) > 1:
            return space.per_copy(functools.partial(self, space=space), x, t, cond)
        dtype = self.centres.dtype
        x = x.to(dtype)
        lig, b = space.ligands, space.num_graphs
        pos = space.positions(x)
        heavy_pos, atom_batch = pos[lig.heavy], lig.atom_batch
        temb = self.time(sinusoidal_embedding(t, self.hidden).to(dtype))
        h = self.embed(lig.atom_x.to(dtype)) + temb[atom_batch]

        src, dst = lig.pairs
        dist = (heavy_pos[src] - heavy_pos[dst]).norm(dim=-1, keepdim=True)
        near = dist[:, 0] < self.cutoff
        pair_index = lig.pairs[:, near]
        pair_attr = torch.cat([lig.pair_x[near].to(dtype), rbf(dist[near], self.centres)], -1)

        contacts, vectors = self.contacts(heavy_pos, atom_batch, space, cond)
        contact_d = vectors.norm(dim=-1, keepdim=True)
        contact_attr = rbf(contact_d, self.contact_centres)
        p = self.embed_pocket(space.pocket_x.to(dtype))
        m = None
        for ligand_conv, pocket_conv in zip(self.ligand_convs, self.pocket_convs):
            h = ligand_conv(h, pair_index, pair_attr)
            h, m = pocket_conv(h, p, contacts, contact_attr)

        # pocket forces on each ligand atom, their means and torques per complex
        unit = vectors / contact_d.clamp_min(1e-6)
        atom_force = segment_sum(self.force(m)[:, :, None] * unit[:, None], contacts[1], len(h))  # [n, K, 3]
        counts = torch.bincount(atom_batch, minlength=b).clamp_min(1)[:, None, None].to(dtype)
        centroid = segment_sum(heavy_pos, atom_batch, b) / counts[:, :, 0]
        arm = heavy_pos - centroid[atom_batch]
        force = segment_sum(atom_force, atom_batch, b) / counts
        torque = segment_sum(torch.linalg.cross(arm[:, None].expand_as(atom_force), atom_force),
                             atom_batch, b) / counts

        translation, rotation, torsions = space.parts(x)
        r1, r2 = rotation[:, :3], rotation[:, 3:]
        pooled = segment_sum(h, atom_batch, b) / counts[:, :, 0]
        invariants = torch.stack([translation.norm(dim=-1), r1.norm(dim=-1), r2.norm(dim=-1),
                                  (r1 * r2).sum(-1), (translation * r1).sum(-1), (translation * r2).sum(-1)], -1)
        coeff = self.rigid_head(torch.cat([pooled, temb, invariants], -1))
        kf = self.forces
        out_translation = torch.einsum("bk,bkd->bd", coeff[:, :1 + kf], torch.cat([translation[:, None], force], 1))
        columns = []
        for j, r in enumerate((r1, r2)):
            c = coeff[:, 1 + kf + j * (3 + 2 * kf):1 + kf + (j + 1) * (3 + 2 * kf)]
            basis = torch.cat([torch.stack([r1, r2, torch.linalg.cross(r1, r2)], 1), torque,
                               torch.linalg.cross(torque, r[:, None].expand_as(torque))], 1)
            columns.append(torch.einsum("bk,bkd->bd", c, basis))

        out_torsions = self.torsion_head(torch.cat(
            [*self.torsion_features(h, temb, torsions, space), self.torsion_torques(pos, atom_force, space)], -1))
        return space.assemble(out_translation, torch.cat(columns, 1), out_torsions).to(x.dtype)

    def contacts(self, heavy_pos: Tensor, atom_batch: Tensor, space: PoseSpace,
                 cond: Tensor | None) -> tuple[Tensor, Tensor]:
        """Pocket → ligand-heavy-atom pairs [2, E] closer than `contact` Å, in complexes whose
        pocket is present (cond = 1 or no condition), and their vectors x_i − y_j [E, 3]."""
        rows, cols = [], []
        present = torch.ones(space.num_graphs, dtype=torch.bool) if cond is None else cond[:, 0].cpu() > 0.5
        lig_rows = torch.arange(len(heavy_pos), device=heavy_pos.device)
        pocket_rows = torch.arange(len(space.pocket_pos), device=heavy_pos.device)
        for b in present.nonzero()[:, 0].tolist():
            li, pj = lig_rows[atom_batch == b], pocket_rows[space.pocket_batch == b]
            close = torch.cdist(heavy_pos[li], space.pocket_pos[pj].to(heavy_pos.dtype)) < self.contact
            i, j = close.nonzero(as_tuple=True)
            rows.append(pj[j])
            cols.append(li[i])
        index = torch.stack([torch.cat(rows), torch.cat(cols)]) if rows \
            else torch.zeros((2, 0), dtype=torch.long, device=heavy_pos.device)
        return index, heavy_pos[index[1]] - space.pocket_pos[index[0]].to(heavy_pos.dtype)

    @staticmethod
    def torsion_features(h: Tensor, temb: Tensor, torsions: Tensor, space: PoseSpace) -> list[Tensor]:
        """What the conformer model reads per torsion: its atoms, time, state row, ETKDG prior."""
        lig = space.ligands
        a, b, c, d = lig.torsion_heavy.unbind(1)
        theta = torch.atan2(torsions[:, 1], torsions[:, 0])
        return [h[b] + h[c], h[a] + h[d], temb[lig.batch], torsions, torsions.norm(dim=-1, keepdim=True),
                *TorsionNet.prior_features(lig, theta)]

    @staticmethod
    def torsion_torques(pos: Tensor, atom_force: Tensor, space: PoseSpace) -> Tensor:
        """Per torsion [T, K]: Σ over heavy atoms on its moving side of ((x_i − x_b) × f_ik) · axis,
        the K pocket forces' torques about the rotatable bond (reflection-odd, like θ)."""
        lig = space.ligands
        out = atom_force.new_zeros((len(lig.torsions.atoms), atom_force.shape[1]))
        heavy_row = lig.heavy_row
        for rows, atom_rows, local in lig.torsions.moves:
            keep = heavy_row[atom_rows] >= 0
            atoms, torsion = atom_rows[keep], rows[local[keep]]
            bonds = lig.torsions.atoms[torsion]
            origin, end = pos[bonds[:, 1]], pos[bonds[:, 2]]
            axis = (end - origin) / (end - origin).norm(dim=-1, keepdim=True)
            arm = pos[atoms] - origin
            f = atom_force[heavy_row[atoms]]
            tq = (torch.linalg.cross(arm[:, None].expand_as(f), f) * axis[:, None]).sum(-1)
            out.index_add_(0, torsion, tq)
        return out
