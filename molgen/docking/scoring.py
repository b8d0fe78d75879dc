"""AutoDock Vina's scoring function in torch: differentiable in the ligand's coordinates,
batched over poses, for guidance, local optimisation and ranking.

Vina (Trott & Olson 2010; the defaults of Vina 1.2, Eberhardt et al. 2021) scores heavy
atoms only, each with an X-Score type t (`XS_TYPES`: element, and for C whether it is bonded
to a heteroatom, for N and O whether it donates and/or accepts H-bonds) and vdW radius R_t.
A pair of atoms i, j at distance r_ij < 8 Å interacts through its *surface distance*

    d_ij = r_ij − R_i − R_j

by five terms,

    gauss1       exp(−(d / 0.5)²)
    gauss2       exp(−((d − 3) / 2)²)
    repulsion    d²                                   for d < 0
    hydrophobic  1 for d < 0.5, linear to 0 at d = 1.5  (both types hydrophobic)
    H-bond       1 for d < −0.7, linear to 0 at d = 0   (a donor and an acceptor)

weighted by w = (−0.035579, −0.005156, 0.840245, −0.035069, −0.587439):
e_ij = Σ_k w_k f_k(d_ij).  The *intermolecular* energy sums e_ij over ligand–receptor pairs;
the ligand's *intramolecular* energy over its own pairs more than three bonds apart that lie
in different rigid parts of its torsion tree (`intra_pairs`).  Vina searches poses on
inter + intra, and reports

    score = (inter + intra − intra_ref) / (1 + 0.05846 · N_rot)

with intra_ref the intramolecular energy of the best pose found (scoring one pose as it
is: that pose's own, so score = inter / (1 + 0.05846 · N_rot)).  N_rot is Vina's count
(`rotor_count`): ½ Σ over heavy atoms of their rotatable bonds to heavy atoms that have more
than one heavy neighbour, so a rotor to a terminal group (C–OH, S–NH2) counts ½.

Typing follows what Vina sees in the PDBQT files meeko 0.8 writes (molgen.docking.vina):
ligands from the RDKit molecule with explicit H (`ligand_types`), receptors from their
heavy atoms with meeko's protonation of the standard residues (`receptor_types`).  The
torsion tree is meeko's (`torsion_tree`): single, acyclic bonds, amides rigid, and bonds to a
lone terminal atom (methyl, halogen) left out.  Not reproduced: macrocycles that meeko
opens with glue pseudo-atoms (their rings are rigid here), hydrated docking's water atoms,
and Vina's tabulation of the terms (it interpolates them in r², within ~1e-3 kcal/mol).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from rdkit import Chem
from torch import Tensor

from .receptor import RESIDUE_ATOMS, Receptor

XS_TYPES = ("C_H", "C_P", "N_P", "N_D", "N_A", "N_DA", "O_P", "O_D", "O_A", "O_DA",
            "S_P", "P_P", "F_H", "Cl_H", "Br_H", "I_H", "Met_D")
"""Vina's X-Score atom types (in Vina's order): _H hydrophobic, _P polar (neither donor nor
acceptor), _D donor, _A acceptor, _DA both; Met_D a metal ion (a donor)."""
XS = {name: i for i, name in enumerate(XS_TYPES)}
XS_RADIUS = (1.9, 1.9, 1.8, 1.8, 1.8, 1.8, 1.7, 1.7, 1.7, 1.7, 2.0, 2.1, 1.5, 1.8, 2.0, 2.2, 1.2)
"""The X-Score vdW radius R_t (Å) of each type."""
HYDROPHOBIC = frozenset({"C_H", "F_H", "Cl_H", "Br_H", "I_H"})
DONORS = frozenset({"N_D", "N_DA", "O_D", "O_DA", "Met_D"})
ACCEPTORS = frozenset({"N_A", "N_DA", "O_A", "O_DA"})

TERMS = ("gauss1", "gauss2", "repulsion", "hydrophobic", "hbond")
WEIGHTS = (-0.035579, -0.005156, 0.840245, -0.035069, -0.587439)
"""Vina 1.2's weights of TERMS (kcal/mol per unit of each term)."""
ROTOR_WEIGHT = 0.05846
CUTOFF = 8.0
"""Pairs further apart than this (Å) do not interact."""
CAP = 1000.0
"""Vina caps a repulsive energy e (of a ligand atom with the receptor, of an intramolecular
pair) to e · v / (v + e), with v = CAP when it reports a score."""

METAL_ELEMENTS = frozenset({"Mg", "Mn", "Zn", "Ca", "Fe", "Cu", "Co", "Ni", "Na", "K", "Cd", "Hg"})
"""Elements Vina types as metal donors (Met_D)."""
_HALOGEN = {"F": "F_H", "Cl": "Cl_H", "Br": "Br_H", "I": "I_H"}
_HETEROATOMS = frozenset({"N", "O", "S", "P", "F", "Cl", "Br", "I"}) | METAL_ELEMENTS
"""What makes a bonded carbon polar (C_P) for Vina: any heavy atom but carbon."""
_COVALENT_RADIUS = {"C": 0.77, "N": 0.75, "O": 0.73, "P": 1.06, "S": 1.02, "F": 0.71,
                    "Cl": 0.99, "Br": 1.14, "I": 1.33, "Mg": 1.30, "Mn": 1.39, "Zn": 1.31,
                    "Ca": 1.74, "Fe": 1.25}
"""Vina's covalent radii (Å): two atoms are bonded closer than 1.1 × their sum (1.75 is
assumed for other metals; only whether a carbon is bonded to a heteroatom depends on it)."""

# Ligand nitrogens are acceptors (AutoDock type NA) unless one of these matches (meeko 0.8's
# AD4 typing): pyrrole/aniline, amide, triazene N, and cationic N.
_N_NOT_ACCEPTOR = [Chem.MolFromSmarts(s) for s in
                   ("[#7X3v3][a]", "[#7X3v3][#6X3v4]", "[#7X3v3][NX2]=[*]", "[#7+1]")]
_AMIDE = Chem.MolFromSmarts("[NX3]-[CX3]=[O,N,S]")
"""Amide, thioamide and amidine C–N bonds: rigid in meeko's torsion tree ..."""
_TERTIARY_AMIDE = Chem.MolFromSmarts("[NX3]([!#1])([!#1])-[CX3]=[O,N,S]")
"""... except tertiary amides whose two N substituents differ."""
_NEXT_TO_TRIPLE = Chem.MolFromSmarts("[*]-[*]#[*]")

# The N and O of the standard residues as meeko protonates them (HIS as HIE, LYS, ARG
# charged, ASP, GLU charged, CYS with HG): N with an H is a donor, O an acceptor (a donor too
# with an H).  The backbone N is a donor except PRO's (when not N-terminal), O and OXT acceptors.
_SIDE_CHAIN_POLAR = {
    "ARG": {"NE": "N_D", "NH1": "N_D", "NH2": "N_D"}, "ASN": {"ND2": "N_D"}, "GLN": {"NE2": "N_D"},
    "HIS": {"ND1": "N_A", "NE2": "N_D"}, "LYS": {"NZ": "N_D"}, "SER": {"OG": "O_DA"},
    "THR": {"OG1": "O_DA"}, "TRP": {"NE1": "N_D"}, "TYR": {"OH": "O_DA"}}


def heavy_atoms(mol: Chem.Mol) -> Tensor:
    """Indices [n] of mol's heavy atoms, in atom order: the ligand's rows here
    (positions: ``pos[heavy_atoms(mol)]``)."""
    return torch.tensor([a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1],
                        dtype=torch.long)


def ligand_types(mol: Chem.Mol) -> Tensor:
    """XS types [n] of the heavy atoms of mol (RDKit, explicit H), as Vina types the meeko
    PDBQT: C_P when bonded to any heavy atom but carbon; N acceptor as meeko's NA, donor with
    an H; O always an acceptor, donor with an H; S_P, P_P; halogens hydrophobic; metals Met_D.
    ValueError for other elements (B, Se, Si, ...): Vina's 'vina' function has no type."""
    if mol.GetNumAtoms() > 1 and not any(a.GetAtomicNum() == 1 for a in mol.GetAtoms()) \
            and any(a.GetTotalNumHs() for a in mol.GetAtoms()):
        raise ValueError("ligand_types needs explicit hydrogens (Chem.AddHs): Vina's donors are "
                         "N and O with an H attached")
    not_acceptor = {m[0] for p in _N_NOT_ACCEPTOR for m in mol.GetSubstructMatches(p)}
    types = []
    for atom in mol.GetAtoms():
        el = atom.GetSymbol()
        if el == "H":
            continue
        has_h = atom.GetTotalNumHs(includeNeighbors=True) > 0
        if el == "C":
            polar = any(n.GetSymbol() in _HETEROATOMS for n in atom.GetNeighbors())
            types.append("C_P" if polar else "C_H")
        elif el in ("N", "O"):
            acceptor = el == "O" or atom.GetIdx() not in not_acceptor
            types.append(el + ("_DA" if has_h and acceptor else "_D" if has_h
                               else "_A" if acceptor else "_P"))
        elif el in ("S", "P"):
            types.append(el + "_P")
        elif el in _HALOGEN:
            types.append(_HALOGEN[el])
        elif el in METAL_ELEMENTS:
            types.append("Met_D")
        else:
            raise ValueError(f"Vina has no atom type for element {el} (atom {atom.GetIdx()})")
    return torch.tensor([XS[t] for t in types], dtype=torch.long)


def receptor_types(receptor: Receptor) -> Tensor:
    """XS types [N] of a receptor's atoms, as Vina types meeko's PDBQT of it
    (molgen.docking.vina.prepare_receptor).

    Carbons are C_P when within bonding distance of a heteroatom (as Vina decides it, so a
    side chain whose polar atoms are missing keeps hydrophobic carbons).  N and O follow
    meeko's protonation (`_SIDE_CHAIN_POLAR`; the backbone N a donor, PRO's only at a chain
    start; O, OXT and the carboxylate/amide O acceptors).  Residues missing heavy atoms are
    ones meeko cannot match to a template: they are written without hydrogens, so their N
    are not donors (HIS ND1 stays an acceptor) and their O only acceptors.  S is S_P and
    metal ions Met_D; ValueError for another element."""
    el = list(receptor.element)
    pos = np.asarray(receptor.pos, dtype=float)
    bonded = _bonded_pairs(pos, el)
    polar_carbon = np.zeros(len(el), dtype=bool)
    for i, j in bonded:
        if el[i] == "C" and el[j] in _HETEROATOMS:
            polar_carbon[i] = True
        if el[j] == "C" and el[i] in _HETEROATOMS:
            polar_carbon[j] = True
    # residues with all their heavy atoms (meeko's templates match); N bonded to another
    # residue's C (not a chain start)
    names: dict[tuple[str, int], set[str]] = {}
    for ch, rid, name in zip(receptor.chain, receptor.residue_id, receptor.atom_name):
        names.setdefault((ch, int(rid)), set()).add(name)
    complete = {key: receptor.residue[i] in RESIDUE_ATOMS
                and RESIDUE_ATOMS[receptor.residue[i]] - {"O", "OXT"} <= names[key]
                and bool({"O", "OXT"} & names[key])  # a C-terminal OXT stands in for O
                for i, key in enumerate(zip(receptor.chain, map(int, receptor.residue_id)))}
    peptide_n = set()
    for i, j in bonded:
        for a, b in ((i, j), (j, i)):
            if receptor.atom_name[a] == "N" and receptor.atom_name[b] == "C" \
                    and receptor.residue_id[a] != receptor.residue_id[b]:
                peptide_n.add(a)
    types = []
    for i, (e, name, res) in enumerate(zip(el, receptor.atom_name, receptor.residue)):
        full = complete[(receptor.chain[i], int(receptor.residue_id[i]))]
        if e == "C":
            types.append("C_P" if polar_carbon[i] else "C_H")
        elif e == "N":
            if name == "N":
                donor = full and (res != "PRO" or i not in peptide_n)
                types.append("N_D" if donor else "N_P")
            elif full:
                types.append(_SIDE_CHAIN_POLAR.get(res, {}).get(name, "N_P"))
            else:
                types.append("N_A" if (res, name) == ("HIS", "ND1") else "N_P")
        elif e == "O":
            types.append(_SIDE_CHAIN_POLAR.get(res, {}).get(name, "O_A") if full else "O_A")
        elif e == "S":
            types.append("S_P")
        elif e in METAL_ELEMENTS:
            types.append("Met_D")
        else:
            raise ValueError(f"{receptor.name}: Vina has no atom type for element {e} "
                             f"({res} {name})")
    return torch.tensor([XS[t] for t in types], dtype=torch.long)


def _bonded_pairs(pos: np.ndarray, element: list[str]) -> np.ndarray:
    """Pairs [P, 2] (i < j) of atoms closer than 1.1 × the sum of their covalent radii."""
    from scipy.spatial import cKDTree

    radius = np.array([_COVALENT_RADIUS.get(e, 1.75) for e in element])
    pairs = cKDTree(pos).query_pairs(r=2.2 * radius.max(), output_type="ndarray")
    if len(pairs) == 0:
        return pairs.reshape(0, 2)
    r = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1)
    return pairs[r < 1.1 * (radius[pairs[:, 0]] + radius[pairs[:, 1]])]


# --------------------------------------------------------------------------- torsion tree

def _considered_atoms(mol: Chem.Mol) -> list[int]:
    """The atoms of meeko's torsion tree: heavy atoms and polar H (H bonded to N, O, F, P, S);
    the other H are merged into their carbon."""
    return [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1
            or any(n.GetAtomicNum() in (7, 8, 9, 15, 16) for n in a.GetNeighbors())]


@dataclass
class TorsionTree:
    """meeko 0.8's torsion tree of a ligand, over its heavy atoms [n]: the rigid part of each
    (`part` [n], numbered 0 …, the root 0) and the rotatable bonds, each as (parent part,
    child part, X, Y): X the parent's atom and Y the child's atom of the bond (atom indices of
    mol)."""

    part: Tensor
    rotors: list[tuple[int, int, int, int]]


def torsion_tree(mol: Chem.Mol) -> TorsionTree:
    """meeko 0.8's torsion tree of mol (explicit H).

    Candidate rotors are single, acyclic bonds, except amide-like C–N bonds (tertiary amides
    with different N substituents excepted) and single bonds next to a triple bond (the
    triple bond itself turns).  Parts are the connected pieces of heavy atoms and polar H
    over the other bonds; a part of one atom hanging on one other part (a methyl, a halogen,
    a carbonyl O) is merged into it, except the root: meeko's, the centre of the part graph
    (leaves stripped until one or two parts remain; of two, the larger)."""
    atoms = _considered_atoms(mol)
    keep = set(atoms)
    amides = {frozenset(m[:2]) for m in mol.GetSubstructMatches(_AMIDE)}
    ranks = list(Chem.CanonicalRankAtoms(mol, breakTies=False))
    for m in mol.GetSubstructMatches(_TERTIARY_AMIDE, uniquify=True):
        if ranks[m[1]] != ranks[m[2]]:
            amides.discard(frozenset((m[0], m[3])))
    near_triple = set()
    for a, b, c in mol.GetSubstructMatches(_NEXT_TO_TRIPLE):
        near_triple.add(frozenset((a, b)))
        near_triple.update(frozenset((c, n.GetIdx())) for n in mol.GetAtomWithIdx(c).GetNeighbors()
                           if n.GetIdx() != b)
    rotors = set()
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        key = frozenset((i, j))
        if i not in keep or j not in keep or bond.IsInRing():
            continue
        if bond.GetBondType() == Chem.BondType.TRIPLE or (
                bond.GetBondType() == Chem.BondType.SINGLE and key not in amides
                and key not in near_triple):
            rotors.add(key)
    # connected pieces over the other bonds (union-find)
    label = {a: a for a in atoms}

    def find(a):
        while label[a] != a:
            label[a] = label[label[a]]
            a = label[a]
        return a
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if i in keep and j in keep and frozenset((i, j)) not in rotors:
            label[find(i)] = find(j)
    members: dict[int, list[int]] = {}
    for a in atoms:
        members.setdefault(find(a), []).append(a)
    graph: dict[int, set[int]] = {p: set() for p in members}
    for i, j in map(tuple, rotors):
        graph[find(i)].add(find(j))
        graph[find(j)].add(find(i))
    root = _centre(graph, members)
    # a one-atom part on one other part turns nothing: merge it (in one pass, as meeko does)
    merged = {p: next(iter(g)) for p, g in graph.items()
              if len(members[p]) == 1 and len(g) == 1 and p != root}
    part_of = {a: merged.get(find(a), find(a)) for a in atoms}
    bonds = {}
    for i, j in map(tuple, rotors):
        if part_of[i] != part_of[j]:
            bonds.setdefault(part_of[i], []).append((i, j))
            bonds.setdefault(part_of[j], []).append((j, i))
    # number the parts from the root outwards, orienting each rotor parent -> child
    number, order, oriented = {root: 0}, [root], []
    for p in order:
        for x, y in sorted(bonds.get(p, [])):
            if part_of[y] not in number:
                number[part_of[y]] = len(number)
                order.append(part_of[y])
                oriented.append((number[p], number[part_of[y]], x, y))
    heavy = heavy_atoms(mol).tolist()
    part = torch.tensor([number[part_of[a]] for a in heavy], dtype=torch.long).reshape(-1)
    return TorsionTree(part, oriented)


def _centre(graph: dict[int, set[int]], members: dict[int, list[int]]) -> int:
    """meeko's root: strip the leaves of the part graph until one or two parts remain (of
    two, the larger; ties to the first)."""
    g = {k: set(v) for k, v in graph.items()}
    while len(g) > 2:
        leaves = [k for k, v in g.items() if len(v) == 1]
        for leaf in leaves:
            for v in g.values():
                v.discard(leaf)
            del g[leaf]
    keys = list(g)
    if len(keys) == 1:
        return keys[0]
    return keys[0] if len(members[keys[0]]) >= len(members[keys[1]]) else keys[1]


def rotor_count(mol: Chem.Mol) -> float:
    """Vina's N_rot: ½ Σ over heavy atoms a of the rotatable bonds a–b with b heavy and
    bonded to more than one heavy atom (so a bond between two non-terminal atoms counts 1,
    a bond to a terminal group such as C–OH ½)."""
    heavy_degree = [sum(n.GetAtomicNum() > 1 for n in a.GetNeighbors()) for a in mol.GetAtoms()]
    return sum(0.5 * (heavy_degree[x] > 1) + 0.5 * (heavy_degree[y] > 1)
               for _, _, x, y in torsion_tree(mol).rotors)


def intra_pairs(mol: Chem.Mol) -> Tensor:
    """The ligand's intramolecular pairs [P, 2] (rows of the heavy atoms, i < j) as Vina
    counts them: more than three bonds apart, and in different rigid nodes of Vina's tree,
    where a rotor's child atom Y is a node of its parent part; pairs of a rotor's atom (X or
    Y) and an atom of its child node are left out too (their distance is fixed)."""
    tree = torsion_tree(mol)
    heavy = heavy_atoms(mol).tolist()
    row = {a: n for n, a in enumerate(heavy)}
    node = tree.part.clone()
    for parent, _, _, y in tree.rotors:
        node[row[y]] = parent
    fixed = set()
    for _, child, x, y in tree.rotors:
        for k in torch.nonzero(node == child).flatten().tolist():
            fixed.update({(row[x], k), (k, row[x]), (row[y], k), (k, row[y])})
    path = Chem.GetDistanceMatrix(mol)
    node = node.tolist()
    pairs = [(a, b) for a in range(len(heavy)) for b in range(a + 1, len(heavy))
             if node[a] != node[b] and path[heavy[a], heavy[b]] > 3 and (a, b) not in fixed]
    return torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)


@dataclass
class VinaLigand:
    """What Vina's function needs of one ligand: its heavy atoms [n] (indices of mol), their
    XS types [n], its intramolecular pairs [P, 2] (rows of the heavy atoms) and N_rot."""

    heavy: Tensor
    types: Tensor
    pairs: Tensor
    rotors: float

    @classmethod
    def from_mol(cls, mol: Chem.Mol) -> "VinaLigand":
        return cls(heavy_atoms(mol), ligand_types(mol), intra_pairs(mol), rotor_count(mol))

    def positions(self, mol_or_pos) -> Tensor:
        """The heavy atoms' rows [..., n, 3] of an RDKit conformer (the first) or of all-atom
        positions [..., N, 3]."""
        if isinstance(mol_or_pos, Chem.Mol):
            mol_or_pos = torch.tensor(mol_or_pos.GetConformer().GetPositions())
        return mol_or_pos[..., self.heavy, :]


# --------------------------------------------------------------------------- the terms

def _type_tables(dtype=torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    """R_s + R_t, hydrophobic pair, donor–acceptor pair: each [T, T]."""
    radius = torch.tensor(XS_RADIUS, dtype=dtype)
    hyd = torch.tensor([t in HYDROPHOBIC for t in XS_TYPES])
    don = torch.tensor([t in DONORS for t in XS_TYPES])
    acc = torch.tensor([t in ACCEPTORS for t in XS_TYPES])
    return (radius[:, None] + radius[None, :], hyd[:, None] & hyd[None, :],
            (don[:, None] & acc[None, :]) | (acc[:, None] & don[None, :]))


_RSUM, _HYD, _HBOND = _type_tables()


def pair_terms(r: Tensor, type_i: Tensor, type_j: Tensor, cutoff: float = CUTOFF) -> Tensor:
    """The five unweighted terms [..., 5] (`TERMS`) of pairs at distances r [...] with XS
    types type_i, type_j [...]; zero at r ≥ cutoff."""
    d = r - _RSUM.to(r)[type_i, type_j]
    within = (r < cutoff).to(r)
    gauss1 = torch.exp(-(d / 0.5) ** 2)
    gauss2 = torch.exp(-((d - 3.0) / 2.0) ** 2)
    repulsion = d.clamp(max=0.0) ** 2
    hydrophobic = (1.5 - d).clamp(0.0, 1.0) * _HYD.to(r.device)[type_i, type_j]
    hbond = (-d / 0.7).clamp(0.0, 1.0) * _HBOND.to(r.device)[type_i, type_j]
    return torch.stack([gauss1, gauss2, repulsion, hydrophobic, hbond], -1) * within[..., None]


def pair_energy(r: Tensor, type_i: Tensor, type_j: Tensor, cutoff: float = CUTOFF) -> Tensor:
    """Vina's weighted energy [...] (kcal/mol) of pairs at distances r [...] (uncapped)."""
    weights = torch.tensor(WEIGHTS, dtype=r.dtype, device=r.device)
    return pair_terms(r, type_i, type_j, cutoff) @ weights


def _batch(lig_pos: Tensor, lig_types: Tensor) -> tuple[Tensor, Tensor, bool]:
    """lig_pos as [B, n, 3], lig_types as [B, n] (−1: padding), and whether lig_pos had no
    batch dimension."""
    single = lig_pos.dim() == 2
    pos = lig_pos[None] if single else lig_pos
    types = lig_types.to(pos.device)
    types = types.expand(pos.shape[0], -1) if types.dim() == 1 else types
    return pos, types, single


def intra_terms(lig_pos: Tensor, lig_types: Tensor, pairs: Tensor,
                cutoff: float = CUTOFF) -> Tensor:
    """The ligand's unweighted intramolecular terms [B, 5] (or [5]) over pairs [P, 2] of
    lig_pos [B, n, 3] (or [n, 3]) with types [n] (or [B, n])."""
    pos, types, single = _batch(lig_pos, lig_types)
    i, j = pairs.to(pos.device).T
    r = (pos[:, i] - pos[:, j]).pow(2).sum(-1).clamp_min(1e-12).sqrt()   # [B, P]
    terms = pair_terms(r, types[:, i], types[:, j], cutoff).sum(1)
    return terms[0] if single else terms


def intra(lig_pos: Tensor, lig_types: Tensor, pairs: Tensor, *, cutoff: float = CUTOFF,
          weights=WEIGHTS, cap: float = CAP) -> Tensor:
    """The ligand's intramolecular energy [B] (or a scalar), kcal/mol: Σ over pairs [P, 2]
    of Σ_k w_k f_k(d_ij), each pair's energy capped as Vina caps it (see `_curl`)."""
    pos, types, single = _batch(lig_pos, lig_types)
    i, j = pairs.to(pos.device).T
    r = (pos[:, i] - pos[:, j]).pow(2).sum(-1).clamp_min(1e-12).sqrt()   # [B, P]
    w = torch.as_tensor(weights, dtype=r.dtype, device=r.device)
    e = _curl(pair_terms(r, types[:, i], types[:, j], cutoff) @ w, cap).sum(-1)
    return e[0] if single else e


def _curl(e: Tensor, v: float) -> Tensor:
    """Vina's cap of a positive energy: e · v / (v + e) for e > 0 (smooth at 0)."""
    return torch.where(e > 0, e * v / (v + e.clamp_min(0)), e)


class VinaScore(torch.nn.Module):
    """Vina's function for ligands in one receptor: receptor atoms pos [N, 3] (Å) with XS
    types [N].  Keep N small: `from_receptor` keeps the atoms within the cut-off of a box.

    inter(lig_pos [B, n, 3] or [n, 3], lig_types [n] or [B, n]) -> [B] (or a scalar): the
    ligand–receptor energy, kcal/mol; `energy` adds the ligand's intramolecular energy (what
    Vina's search minimises), `score` divides by the rotor term (what Vina reports).  All
    are differentiable in lig_pos; the cost is one distance per ligand atom and receptor atom
    (without gradient), then the terms of the pairs within the cut-off only.
    """

    def __init__(self, receptor_pos, receptor_types, cutoff: float = CUTOFF, cap: float = CAP):
        super().__init__()
        self.register_buffer("pos", torch.as_tensor(np.asarray(receptor_pos), dtype=torch.float64)
                             if not isinstance(receptor_pos, Tensor) else receptor_pos.double())
        self.register_buffer("types", torch.as_tensor(receptor_types, dtype=torch.long))
        self.cutoff = float(cutoff)
        self.cap = float(cap)

    @classmethod
    def from_receptor(cls, receptor: Receptor, center=None, size=None,
                      cutoff: float = CUTOFF) -> "VinaScore":
        """From a Receptor (typed by `receptor_types`), keeping the atoms within `cutoff` of
        the box (center [3], size [3], Å) when one is given: exact for ligands inside it."""
        types = receptor_types(receptor)
        pos = np.asarray(receptor.pos, dtype=float)
        if center is not None:
            half = np.asarray(size, dtype=float) / 2
            outside = np.clip(np.abs(pos - np.asarray(center, dtype=float)) - half, 0, None)
            keep = np.linalg.norm(outside, axis=1) < cutoff
            pos, types = pos[keep], types[torch.as_tensor(keep)]
        return cls(pos, types, cutoff)

    def _pairs(self, lig_pos: Tensor, lig_types: Tensor):
        """The ligand–receptor pairs within the cut-off: pose b, ligand row i, receptor atom j
        [P] each, their unweighted terms [P, 5]; and pos [B, n, 3], whether unbatched."""
        pos, types, single = _batch(lig_pos, lig_types)
        rec = self.pos.to(pos)
        with torch.no_grad():
            r2 = torch.cdist(pos.detach(), rec[None].expand(pos.shape[0], -1, -1)) ** 2
            b, i, j = torch.nonzero((r2 < (self.cutoff + 0.5) ** 2) & (types[:, :, None] >= 0),
                                    as_tuple=True)
        r = (pos[b, i] - rec[j]).pow(2).sum(-1).clamp_min(1e-12).sqrt()         # [P]
        terms = pair_terms(r, types[b, i], self.types.to(pos.device)[j], self.cutoff)
        return b, i, terms, pos, single

    def inter_terms(self, lig_pos: Tensor, lig_types: Tensor) -> Tensor:
        """The unweighted intermolecular terms [B, 5] (or [5]), summed over the
        ligand–receptor pairs within the cut-off (`inter` is their weighted sum, but for
        Vina's cap of repulsive atoms)."""
        b, _, terms, pos, single = self._pairs(lig_pos, lig_types)
        out = torch.zeros((pos.shape[0], len(TERMS)), dtype=pos.dtype, device=pos.device)
        out = out.index_add(0, b, terms)
        return out[0] if single else out

    def inter_atoms(self, lig_pos: Tensor, lig_types: Tensor, weights=WEIGHTS) -> Tensor:
        """Each ligand atom's energy with the receptor [B, n] (or [n]), kcal/mol, capped as
        Vina caps it: a repulsive (positive) atom energy e becomes e · v / (v + e), v =
        `self.cap` (1000: a correction of e²/1000, only for clashes)."""
        b, i, terms, pos, single = self._pairs(lig_pos, lig_types)
        e = terms @ torch.as_tensor(weights, dtype=terms.dtype, device=terms.device)
        atoms = torch.zeros(pos.shape[:2], dtype=pos.dtype, device=pos.device)
        atoms = _curl(atoms.index_put((b, i), e, accumulate=True), self.cap)
        return atoms[0] if single else atoms

    def inter(self, lig_pos: Tensor, lig_types: Tensor, weights=WEIGHTS) -> Tensor:
        """Ligand–receptor energy [B] (or a scalar), kcal/mol: Σ_i Σ_j Σ_k w_k f_k(d_ij),
        each atom's sum capped (`inter_atoms`)."""
        return self.inter_atoms(lig_pos, lig_types, weights).sum(-1)

    forward = inter

    def intra(self, lig_pos: Tensor, lig_types: Tensor, pairs: Tensor) -> Tensor:
        """The ligand's intramolecular energy [B] (or a scalar) over pairs [P, 2]."""
        return intra(lig_pos, lig_types, pairs, cutoff=self.cutoff, cap=self.cap)

    def energy(self, lig_pos: Tensor, ligand: VinaLigand) -> Tensor:
        """inter + intra [B] (or a scalar): the energy Vina's search and local optimisation
        minimise (kcal/mol)."""
        return self.inter(lig_pos, ligand.types) + self.intra(lig_pos, ligand.types, ligand.pairs)

    def score(self, lig_pos: Tensor, ligand: VinaLigand, intra_ref: Tensor | float | None = None
              ) -> Tensor:
        """What Vina reports for each pose [B] (or a scalar), kcal/mol:
        (inter + intra − intra_ref) / (1 + 0.05846 · N_rot).  intra_ref None: each pose's own
        intramolecular energy (Vina's score of a pose as it is: inter / (1 + w N_rot)); to
        rank docked poses as Vina does, pass the intramolecular energy of the best one."""
        inter = self.inter(lig_pos, ligand.types)
        if intra_ref is not None:
            inter = inter + self.intra(lig_pos, ligand.types, ligand.pairs) - intra_ref
        return inter / (1.0 + ROTOR_WEIGHT * ligand.rotors)


GRID_SPACING = 0.375
"""Å between the points of a grid map (Vina's default)."""
TABLE_STEP = 0.01
"""Å between the distances at which the pair energies of the grid maps are tabulated."""


class VinaGrid:
    """Vina's grid maps: for each ligand XS type, the uncapped ligand–receptor energy of one atom
    of that type at every point of a regular grid over the box, read back by trilinear
    interpolation — the inter-molecular energy at a cost independent of the receptor's size, as
    Vina's own search evaluates it (its poses are then scored exactly, as `VinaScore` does).

    maps [K, D, H, W] (z, y, x order, as grid_sample reads them) for the types in `channel`
    (XS type → map, −1 where none); origin [3]: the grid's lowest corner; spacing (Å)."""

    def __init__(self, maps: Tensor, channel: Tensor, origin: Tensor, *, spacing: float, cap: float = CAP):
        self.maps, self.channel, self.origin, self.spacing, self.cap = maps, channel, origin, spacing, cap
        self.extent = torch.tensor(maps.shape[:0:-1], dtype=maps.dtype) - 1   # points − 1 along x, y, z

    @classmethod
    def of(cls, score: VinaScore, types: Tensor, *, centre, size, spacing: float = GRID_SPACING,
           chunk: int = 8192) -> "VinaGrid":
        """The maps of the XS types [n] (a ligand's) over the box (centre [3], size [3], Å) of
        `score`'s receptor."""
        centre, size = (torch.as_tensor(np.asarray(v, dtype=np.float64)) for v in (centre, size))
        counts = torch.ceil(size / spacing).long() + 1
        origin = centre - (counts - 1) * spacing / 2
        axes = [origin[k] + spacing * torch.arange(int(counts[k]), dtype=torch.float64) for k in range(3)]
        z, y, x = torch.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
        points = torch.stack([x, y, z], -1).reshape(-1, 3)
        present = torch.unique(types[types >= 0])
        channel = torch.full((len(XS_TYPES),), -1, dtype=torch.long)
        channel[present] = torch.arange(len(present))
        # each (receptor type, map) pair's energy tabulated against r every TABLE_STEP Å and
        # read back linearly, as Vina precalculates it: a gather per pair instead of the terms
        rec_types = torch.unique(score.types, return_inverse=True)
        r_table = torch.arange(0.0, score.cutoff + 2 * TABLE_STEP, TABLE_STEP, dtype=torch.float64)
        table = pair_energy(r_table[None, :, None], present[None, None, :],
                            rec_types[0][:, None, None], score.cutoff).float()   # [A, bins, K]
        maps = torch.zeros((len(points), len(present)), dtype=torch.float32)
        rec_pos = score.pos.float()
        with torch.no_grad():
            for start in range(0, len(points), chunk):
                r = torch.cdist(points[start:start + chunk].float(), rec_pos)
                p, j = torch.nonzero(r < score.cutoff, as_tuple=True)
                x = r[p, j] / TABLE_STEP
                k = x.long()
                f = (x - k)[:, None]
                a = rec_types[1][j]
                maps.index_add_(0, p + start, table[a, k] * (1 - f) + table[a, k + 1] * f)
        maps = maps.double().T
        return cls(maps.reshape(len(present), *z.shape), channel, origin, spacing=spacing, cap=score.cap)

    def inter_atoms(self, lig_pos: Tensor, lig_types: Tensor) -> Tensor:
        """Each ligand atom's energy with the receptor [B, n] (or [n]), interpolated and capped
        as `VinaScore.inter_atoms`; atoms outside the grid take the value at its border."""
        pos, types, single = _batch(lig_pos, lig_types)
        grid = (pos - self.origin.to(pos)) / (self.spacing * self.extent.to(pos)) * 2 - 1
        values = torch.nn.functional.grid_sample(
            self.maps.to(pos)[None], grid.reshape(1, -1, 1, 1, 3), mode="bilinear",
            padding_mode="border", align_corners=True)[0, :, :, 0, 0]          # [K, B·n]
        atoms = values.gather(0, self.channel.to(pos.device)[types.clamp_min(0)].reshape(1, -1))
        atoms = _curl(atoms.reshape(types.shape) * (types >= 0), self.cap)
        return atoms[0] if single else atoms

    def inter(self, lig_pos: Tensor, lig_types: Tensor) -> Tensor:
        """Ligand–receptor energy [B] (or a scalar), kcal/mol, from the maps."""
        return self.inter_atoms(lig_pos, lig_types).sum(-1)
