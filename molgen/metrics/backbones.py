"""Geometry of Cα traces: virtual bonds, angles and dihedrals, clashes, radius of gyration,
a Cα-only secondary-structure assignment (P-SEA) and helix handedness.

All functions take one trace, positions [L, 3] in Å (numpy or torch), in chain order.

Virtual geometry.  Bond b_i = |x_{i+1} − x_i| (3.80 Å for trans peptides); angle τ_i at
residue i between x_{i−1}, x_i, x_{i+1}; dihedral α_i of x_{i−1}, x_i, x_{i+1}, x_{i+2}, in
(−180°, 180°], positive for a right-handed turn (an α-helix has α ≈ +50°, a strand ≈ −170°).
A mirror image flips the sign of every α and keeps everything else.

P-SEA (Labesse et al. 1997): a residue is helical or extended when the Cα distances to the
residues 2, 3 and 4 along the chain, or its τ and α, fall in the ranges of that element;
helices need 5 such residues in a row, strands 4 (or 3 beside another strand).
"""
from __future__ import annotations

import numpy as np

BOND = 3.80
"""Å, the Cα–Cα distance of a trans peptide."""
CLASH = 3.0
"""Å: non-adjacent Cα atoms closer than this clash."""

# P-SEA's ranges (degrees, Å): value ± tolerance
HELIX = {"tau": (89, 12), "alpha": (50, 20), "d2": (5.5, 0.5), "d3": (5.3, 0.5), "d4": (6.4, 0.6)}
STRAND = {"tau": (124, 14), "alpha": (-170, 45), "d2": (6.7, 0.6), "d3": (9.9, 0.9), "d4": (12.4, 1.1)}
MIN_RUN = {"H": 5, "E": 3}  # strands of exactly 3 also need contacts (secondary_structure)


def _array(ca) -> np.ndarray:
    ca = np.asarray(ca.detach().cpu() if hasattr(ca, "detach") else ca, dtype=np.float64)
    if ca.ndim != 2 or ca.shape[1] != 3:
        raise ValueError(f"a Cα trace is [L, 3], got shape {ca.shape}")
    return ca


def bonds(ca) -> np.ndarray:
    """Virtual bond lengths [L − 1] (Å)."""
    ca = _array(ca)
    return np.linalg.norm(np.diff(ca, axis=0), axis=1)


def angles(ca) -> np.ndarray:
    """Virtual bond angles τ [L − 2] (degrees) at residues 1 … L − 2."""
    ca = _array(ca)
    u, v = ca[:-2] - ca[1:-1], ca[2:] - ca[1:-1]
    cos = (u * v).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def dihedrals(ca) -> np.ndarray:
    """Virtual dihedrals α [L − 3] (degrees) of residues 1 … L − 3, right-handed positive."""
    ca = _array(ca)
    b0, b1, b2 = ca[1:-2] - ca[:-3], ca[2:-1] - ca[1:-2], ca[3:] - ca[2:-1]
    n1, n2 = np.cross(b0, b1), np.cross(b1, b2)
    m = np.cross(n1, b1 / np.linalg.norm(b1, axis=1, keepdims=True))
    return -np.degrees(np.arctan2((m * n2).sum(1), (n1 * n2).sum(1)))


def clashes(ca, cutoff: float = CLASH) -> int:
    """Pairs of Cα atoms two or more residues apart that are closer than cutoff (Å)."""
    ca = _array(ca)
    d = np.linalg.norm(ca[:, None] - ca[None], axis=-1)
    i, j = np.triu_indices(len(ca), k=2)
    return int((d[i, j] < cutoff).sum())


def radius_of_gyration(ca) -> float:
    ca = _array(ca)
    return float(np.sqrt(((ca - ca.mean(0)) ** 2).sum(1).mean()))


def _within(values: np.ndarray, centre: float, tol: float) -> np.ndarray:
    return np.abs(values - centre) <= tol  # NaN (undefined) is never within


def _runs(mask: np.ndarray, min_run: int) -> list[tuple[int, int]]:
    """[start, stop) of the runs of at least min_run True entries."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_run]


def _grow(mask: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """mask widened by one residue at each end of its runs where that residue is `allowed`."""
    mask = mask.copy()
    for a, b in _runs(mask, 1):
        if a > 0 and allowed[a - 1]:
            mask[a - 1] = True
        if b < len(mask) and allowed[b]:
            mask[b] = True
    return mask


def secondary_structure(ca) -> str:
    """P-SEA's assignment, one letter per residue: H (helix), E (strand) or C (coil).

    Residue i is measured by d_k = |x_{i+k−1} − x_{i−1}| (k = 2, 3, 4), τ_i and α_i.  A helix
    is 5 or more residues in a row that fit the helix ranges strictly (d3 and d4, or τ and α),
    grown by a residue at each end that fits loosely (d3 or τ); a strand is 4 or more in a row that fit
    the strand ranges strictly (d2, d3 and d4, or τ and α), or 3 that lie beside another part
    of the chain (≥ 5 Cα contacts at 4.2–5.2 Å, as paired strands do), grown by a residue at
    each end whose d3 fits.  Strands are assigned after helices and win where both fit."""
    ca = _array(ca)
    n = len(ca)
    if n <= 5:
        return "C" * n
    d = {k: np.full(n, np.nan) for k in (2, 3, 4)}
    for k in d:
        d[k][1:n - k + 1] = np.linalg.norm(ca[k:] - ca[:n - k], axis=1)
    tau, alpha = np.full(n, np.nan), np.full(n, np.nan)
    tau[1:-1], alpha[1:-2] = angles(ca), dihedrals(ca)
    strand_alpha = np.abs((alpha - STRAND["alpha"][0] + 180) % 360 - 180) <= STRAND["alpha"][1]

    helix_turn = _within(tau, *HELIX["tau"])
    helix_strict = (_within(d[3], *HELIX["d3"]) & _within(d[4], *HELIX["d4"])) | (
        helix_turn & _within(alpha, *HELIX["alpha"]))
    helix = np.zeros(n, dtype=bool)
    for a, b in _runs(helix_strict, MIN_RUN["H"]):
        helix[a:b] = True
    helix = _grow(helix, _within(d[3], *HELIX["d3"]) | helix_turn)

    strand_strict = (_within(d[2], *STRAND["d2"]) & _within(d[3], *STRAND["d3"])
                     & _within(d[4], *STRAND["d4"])) | (_within(tau, *STRAND["tau"]) & strand_alpha)
    dist = np.linalg.norm(ca[:, None] - ca[None], axis=-1)
    contact = (dist >= 4.2) & (dist <= 5.2) & (np.abs(np.subtract.outer(np.arange(n), np.arange(n))) > 2)
    strand = np.zeros(n, dtype=bool)
    for a, b in _runs(strand_strict, MIN_RUN["E"]):
        if b - a >= MIN_RUN["E"] + 1 or contact[a:b].sum() >= 5:
            strand[a:b] = True
    strand = _grow(strand, _within(d[3], *STRAND["d3"]))
    return "".join("E" if e else "H" if h else "C" for h, e in zip(helix, strand))


def helix_handedness(ca) -> tuple[int, int]:
    """(right-handed, all) helical virtual dihedrals: those of residues whose turn has a
    helix's shape regardless of its hand (τ and d(i, i+3) in P-SEA's helix ranges), counted
    by the sign of α; natural chains are ≈ 99.7% right-handed."""
    ca = _array(ca)
    if len(ca) < 5:
        return 0, 0
    tau, alpha = angles(ca)[:-1], dihedrals(ca)            # residues 1 … L − 3
    d3 = np.linalg.norm(ca[4:] - ca[1:-3], axis=1)         # d(i, i + 3) for i = 1 … L − 4
    d3 = np.append(d3, np.nan)
    helical = _within(tau, *HELIX["tau"]) & _within(d3, *HELIX["d3"]) & (np.abs(alpha) < 90)
    return int((alpha[helical] > 0).sum()), int(helical.sum())


def trace_metrics(traces) -> dict:
    """Summary of a set of traces: fraction of virtual bonds within BOND ± 0.2 Å, of chains
    without a clash, of right-handed helical dihedrals, the helix / strand / coil fractions
    of all residues, the fraction of chains that contain a strand, and the mean Rg."""
    traces = [_array(t) for t in traces]
    b = np.concatenate([bonds(t) for t in traces])
    hand = np.array([helix_handedness(t) for t in traces])
    sse = "".join(secondary_structure(t) for t in traces)
    return {"bonds_ok": float(np.mean(np.abs(b - BOND) <= 0.2)),
            "clash_free": float(np.mean([clashes(t) == 0 for t in traces])),
            "right_handed": float(hand[:, 0].sum() / max(hand[:, 1].sum(), 1)),
            "helix": sse.count("H") / len(sse), "strand": sse.count("E") / len(sse),
            "coil": sse.count("C") / len(sse),
            "with_strand": float(np.mean(["E" in secondary_structure(t) for t in traces])),
            "radius_of_gyration": float(np.mean([radius_of_gyration(t) for t in traces]))}
