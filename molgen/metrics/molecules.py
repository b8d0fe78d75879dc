"""EDM's evaluation metrics for generated 3-D molecules (Hoogeboom et al. 2022, Table 1).

A molecule is a pair ``(positions [n, 3] in Å, atom_types [n])`` with types indexing
:data:`molgen.data.qm9.ATOM_SYMBOLS` (H, C, N, O, F); tensors or arrays both work.

- Bonds come from distances alone, as in EDM's ``qm9/bond_analyze.py``: a pair is bonded with
  order 1, 2 or 3 when closer than the tabulated single/double/triple bond length plus a margin
  (10, 5, 3 pm, tuned by EDM to make real QM9 molecules stable).
- Atom stability: the fraction of atoms whose bond orders sum to their valency
  (H 1, C 4, N 3, O 2, F 1); molecule stability: the fraction of molecules all of whose atoms
  are stable.  No formal charges, so e.g. zwitterions count as unstable — that is EDM's rule.
- Validity: the fraction of molecules that RDKit sanitizes when built from those bonds; the
  SMILES kept is that of the largest fragment.  Uniqueness: distinct SMILES among the valid;
  novelty: the fraction of the unique SMILES absent from a reference (training) set.

On 10,000 molecules of EDM's training split these give EDM's "data" row (see
``tests/test_metrics.py``).  Stability runs on padded batches in numpy; validity needs one
RDKit molecule each (10,000 molecules: about 0.6 s and 2 s on one core).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..data.qm9 import ATOM_SYMBOLS

# Typical bond lengths in pm (EDM's bonds1/bonds2/bonds3 tables), restricted to QM9's elements.
SINGLE_BOND_PM = {
    ("H", "H"): 74, ("H", "C"): 109, ("H", "N"): 101, ("H", "O"): 96, ("H", "F"): 92,
    ("C", "C"): 154, ("C", "N"): 147, ("C", "O"): 143, ("C", "F"): 135,
    ("N", "N"): 145, ("N", "O"): 140, ("N", "F"): 136,
    ("O", "O"): 148, ("O", "F"): 142, ("F", "F"): 142,
}
DOUBLE_BOND_PM = {("C", "C"): 134, ("C", "N"): 129, ("C", "O"): 120,
                  ("N", "N"): 125, ("N", "O"): 121, ("O", "O"): 121}
TRIPLE_BOND_PM = {("C", "C"): 120, ("C", "N"): 116, ("C", "O"): 113, ("N", "N"): 110}
MARGINS_PM = (10, 5, 3)  # single, double, triple
VALENCY = {"H": 1, "C": 4, "N": 3, "O": 2, "F": 1}

_BATCH = 2048  # molecules per padded block: bounds memory at 2048·29²·(a few) floats


def _threshold_table(lengths_pm: dict, margin_pm: float) -> np.ndarray:
    """[T, T] distance thresholds in Å by atom-type pair; -inf where the bond order is not
    tabulated, so such a pair never reaches that order."""
    table = np.full((len(ATOM_SYMBOLS),) * 2, -np.inf)
    for (a, b), pm in lengths_pm.items():
        i, j = ATOM_SYMBOLS.index(a), ATOM_SYMBOLS.index(b)
        table[i, j] = table[j, i] = (pm + margin_pm) / 100
    return table


_THRESHOLDS = [_threshold_table(t, m) for t, m in
               zip((SINGLE_BOND_PM, DOUBLE_BOND_PM, TRIPLE_BOND_PM), MARGINS_PM)]
_VALENCY = np.array([VALENCY[s] for s in ATOM_SYMBOLS])


def _numpy(x) -> np.ndarray:
    """Arrays, lists or tensors on any device (generated samples often live on the GPU)."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _pad(molecules: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack molecules into positions [B, N, 3], types [B, N] (0 where padded) and mask [B, N]."""
    sizes = [len(t) for _, t in molecules]
    n = max(sizes)
    pos = np.zeros((len(molecules), n, 3))
    types = np.zeros((len(molecules), n), dtype=np.int64)
    for k, (p, t) in enumerate(molecules):
        pos[k, :sizes[k]] = _numpy(p)
        types[k, :sizes[k]] = _numpy(t)
    mask = np.arange(n) < np.array(sizes)[:, None]
    return pos, types, mask


def _batched_bond_orders(pos: np.ndarray, types: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[B, N, N] bond orders (0-3) of padded molecules; zero on the diagonal and padding."""
    dist = np.linalg.norm(pos[:, :, None] - pos[:, None], axis=-1)
    ti, tj = types[:, :, None], types[:, None]
    single, double, triple = (dist < t[ti, tj] for t in _THRESHOLDS)
    # EDM's nesting: a triple bond must also pass the double test, a double the single one.
    order = single * (1 + double * (1 + triple))
    pair = mask[:, :, None] & mask[:, None] & ~np.eye(mask.shape[1], dtype=bool)
    return np.where(pair, order, 0)


def _blocks(molecules: Sequence) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Padded blocks of at most ``_BATCH`` molecules with their bond orders."""
    for start in range(0, len(molecules), _BATCH):
        pos, types, mask = _pad(molecules[start:start + _BATCH])
        yield _batched_bond_orders(pos, types, mask), types, mask


def bond_orders(positions, atom_types) -> np.ndarray:
    """[n, n] symmetric bond-order matrix of one molecule by EDM's distance rule."""
    orders, _, _ = next(_blocks([(positions, atom_types)]))
    return orders[0]


@dataclass(frozen=True)
class Stability:
    atom_stability: float  # fraction of all atoms with their exact valency
    molecule_stability: float  # fraction of molecules whose atoms are all stable
    stable: np.ndarray  # [num molecules] bool, per molecule


def stability(molecules: Sequence) -> Stability:
    """EDM's atom and molecule stability over a list of ``(positions, atom_types)``."""
    if not len(molecules):
        raise ValueError("stability needs at least one molecule")
    stable_atoms, n_atoms, stable_mols = 0, 0, []
    for orders, types, mask in _blocks(molecules):
        ok = (orders.sum(-1) == _VALENCY[types]) | ~mask
        stable_atoms += int((ok & mask).sum())
        n_atoms += int(mask.sum())
        stable_mols.append(ok.all(-1))
    stable = np.concatenate(stable_mols)
    return Stability(stable_atoms / n_atoms, float(stable.mean()), stable)


# --------------------------------------------------------------------------- RDKit metrics

def _rdkit():
    try:
        from rdkit import Chem, rdBase
    except ModuleNotFoundError:
        raise ModuleNotFoundError("RDKit metrics need rdkit: pip install rdkit") from None
    return Chem, rdBase


def to_rdkit(atom_types, orders: np.ndarray):
    """An unsanitized RDKit molecule with the given atoms and bond-order matrix; no charges and
    no explicit hydrogens, so sanitizing fills under-valent atoms with implicit H as EDM does."""
    Chem, _ = _rdkit()
    bond_type = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    mol = Chem.RWMol()
    for t in _numpy(atom_types):
        mol.AddAtom(Chem.Atom(ATOM_SYMBOLS[int(t)]))
    for i, j in zip(*np.nonzero(np.triu(orders))):
        mol.AddBond(int(i), int(j), bond_type[int(orders[i, j])])
    return mol


def _largest_fragment_smiles(mol) -> str | None:
    """Canonical SMILES of the largest fragment, or None if the whole molecule fails to
    sanitize (EDM sanitizes the whole molecule first, then keeps its largest piece)."""
    Chem, _ = _rdkit()
    try:
        Chem.SanitizeMol(mol)
    except ValueError:  # RDKit's MolSanitizeException (valence, kekulization) subclasses it
        return None
    fragments = Chem.GetMolFrags(mol, asMols=True)
    return Chem.MolToSmiles(max(fragments, key=lambda m: m.GetNumAtoms()))


def smiles(molecules: Sequence) -> list[str | None]:
    """Per molecule, the largest fragment's canonical SMILES, or None where it is invalid."""
    _, rdBase = _rdkit()
    out = []
    with rdBase.BlockLogs():  # a failed sanitization otherwise prints a line per molecule
        for orders, types, mask in _blocks(molecules):
            for k in range(len(types)):
                n = int(mask[k].sum())
                out.append(_largest_fragment_smiles(to_rdkit(types[k, :n], orders[k, :n, :n])))
    return out


@dataclass(frozen=True)
class MoleculeMetrics:
    atom_stability: float
    molecule_stability: float
    validity: float  # valid / all
    uniqueness: float  # distinct valid SMILES / valid (0 if none valid)
    novelty: float | None  # unique SMILES not in the reference / unique; None without reference


def evaluate(molecules: Sequence, reference_smiles: Iterable[str] | None = None) -> MoleculeMetrics:
    """All of EDM's metrics at once.  ``reference_smiles`` (for novelty) should come from
    :func:`smiles` on the training molecules, so both sides use the same bond perception."""
    stab = stability(molecules)
    valid = [s for s in smiles(molecules) if s is not None]
    unique = set(valid)
    novelty = None
    if reference_smiles is not None:
        reference = set(reference_smiles)
        novelty = len(unique - reference) / len(unique) if unique else 0.0
    return MoleculeMetrics(
        atom_stability=stab.atom_stability, molecule_stability=stab.molecule_stability,
        validity=len(valid) / len(molecules),
        uniqueness=len(unique) / len(valid) if valid else 0.0, novelty=novelty)
