"""Synthetic protein–"ligand" complexes cut out of protein chains (the recipe DiffDock-L used to
scale its training data): a short piece of a chain is the ligand, the rest of the chain is
the receptor it is docked back into.

Chains.  The 827 PDownB chains (first chain of each file, read in place from the archive in
$MOLGEN_DATA with `read_receptor`, so the receptor keeps exactly the atoms a real receptor
file would give) and their fixed split, `molgen.data.proteins.split_of`: a valid- or
test-split call never sees a train chain.  The parsed chains are cached as arrays under
$MOLGEN_CACHE (parsing all 827 files: 20–40 s on one CPU thread; loading the 9 MB cache:
under 1 s).  Cutting is not cached: all 650 train chains, 4 complexes each, take about 20 s.
Without a cache, a call with `max_chains` reads only the files it needs (quick tests).

Fragments.  1–`max_residues` consecutive amino-acid residues joined by peptide bonds
(C–N ≤ 2.0 Å), each with all its heavy atoms, MIN_ATOMS–MAX_ATOMS ligand heavy atoms (OXT
included), and *buried*: the mean number of receptor atoms within BURIAL_RADIUS Å of the
fragment's side-chain atoms (of all its atoms when it has none, Gly) is at least
`min_burial` (the receptor being what is left after the cut, see below), so the ligand sits
in a pocket rather than on the surface.  A chain's fragments do not share residues; they are
drawn at random among the windows that pass, with a generator seeded by (seed, chain name).

Ligand.  The fragment's heavy atoms read by RDKit's PDB reader, which gives the standard
amino-acid bond orders; its cut ends become a free amine (NH2) and a carboxylic acid: an
OXT is added at the C-terminal carbon (trigonal, in the CA–C–O plane, 1.25 Å) unless the
chain already has one.  Everything is neutral (Asp/Glu as acids, Lys as an amine, Arg as a
neutral guanidine), as RDKit's templates give.  Then sanitized, explicit hydrogens added
with coordinates, stereo assigned from 3-D.  Heavy atoms come first, in PDB order, at the
chain's exact coordinates; the added OXT is the last heavy atom.  Modified residues are
their parent amino acid (the receptor reader's rule: MSE becomes MET with S for Se).

Receptor.  The full chain less the fragment and its `flank` (default 2) neighbouring residues
on each side, so no receptor atom is covalently bonded to the ligand; fragments with a
receptor atom closer than MIN_CONTACT Å to a ligand heavy atom (a disulfide to a Cys in the
fragment) are skipped.  The pocket is `complex.pocket()` (`Receptor.near`, 12 Å).

Skipped windows are counted in `counts` when a dict is passed: over every window of a chain,
'incomplete' (a residue misses heavy atoms), 'break' (no peptide bond), 'size', 'exposed'
(burial under the threshold); over the drawn windows only, 'contact' (covalent neighbour)
and 'sanitize' (RDKit rejects it, or bonds it other than as the residues' topology: crystal
geometry errors such as a 1 Å CA–CB).

Measured (seed 0, per_chain=4, all chains): train 2,576 complexes from 650 chains (642 give
4, 2 give none), valid 349 from 90, test 348 from 87; fragments 40% one residue, 37% two,
23% three; 8–30 heavy atoms (median 15), 16–66 atoms with H; 1–17 rotatable bonds by
`find_torsions` (median 5); 126–765 receptor atoms within 12 Å (median 370).
"""
from __future__ import annotations

import hashlib
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.paths import default_cache_dir, default_data_root
from ..data.proteins import PDOWNB, SPLITS, split_of
from .receptor import RESIDUE_ATOMS, DockingInputError, Receptor, read_receptor

if TYPE_CHECKING:
    from rdkit import Chem

MIN_ATOMS, MAX_ATOMS = 8, 30
"""Ligand heavy atoms (OXT included), inclusive bounds."""
BURIAL_RADIUS = 8.0
"""Å: receptor atoms within this distance of a fragment atom count towards its burial."""
MIN_BURIAL = 55.0
"""Default threshold on a fragment's burial (mean receptor atoms within 8 Å of its side-chain
atoms, the fragment and flanks removed).  Medians of single residues: Glu/Lys/Asp ~30,
Ile/Phe/Leu/Val ~68; ~35% of all windows pass 55.  Over the ligands of 60 train chains, the
fraction of the ligand's solvent-accessible surface the receptor covers has median 0.67 at
burial 50–60, 0.75 at 60–70 and 0.83 at 70–80, against 0.40 at 20–30."""
MIN_CONTACT = 2.2
"""Å: a fragment with a receptor heavy atom closer than this is skipped: a covalent neighbour
(disulfides, 2.0–2.1 Å); the shortest hydrogen bonds in these chains, 2.2–2.5 Å, are kept."""
PEPTIDE_BOND = 2.0
"""Å: consecutive residues are bonded when C(i)–N(i+1) is at most this."""
POCKET_RADIUS = 12.0
BACKBONE = frozenset({"N", "CA", "C", "O", "OXT"})
_RINGS = {"PHE": 1, "TYR": 1, "HIS": 1, "PRO": 1, "TRP": 2}
_CACHE_FORMAT = 1


@dataclass
class SyntheticComplex:
    """A receptor (the chain less the fragment and its flanks) and the fragment as a ligand
    (RDKit molecule with explicit H and one conformer, the crystal pose); `residues` are the
    fragment's `Receptor.residue_id` values in the full chain (0-based, in file order), `burial`
    its burial score; the name is '<chain>_<first>-<last>' of those, as in '1ail_A_4-6'."""

    name: str
    receptor: Receptor
    ligand: Chem.Mol
    residues: tuple[int, ...] = ()
    burial: float = float("nan")

    def pocket(self, radius: float = POCKET_RADIUS) -> Receptor:
        """The receptor atoms within `radius` Å of any ligand heavy atom."""
        return self.receptor.near(ligand_heavy_positions(self.ligand), radius)


def ligand_heavy_positions(mol) -> np.ndarray:
    """Heavy-atom positions [n, 3] of a molecule's first conformer."""
    pos = mol.GetConformer().GetPositions()
    return pos[[a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]]


def synthetic_complexes(split: str, *, per_chain: int, seed: int, path: str | Path | None = None,
                        max_chains: int | None = None, flank: int = 2, max_residues: int = 3,
                        min_burial: float = MIN_BURIAL, cache_dir: Path | None = None,
                        counts: dict | None = None) -> list[SyntheticComplex]:
    """Up to `per_chain` synthetic complexes from each chain of one split (the first
    `max_chains` chains in name order when given), deterministic in `seed`; a chain's
    fragments depend only on the seed and the chain's name, not on max_chains.  `counts`
    (a dict) receives the numbers of skipped windows by reason and 'chains'/'complexes'."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    tally = Counter()
    chains = load_chain_receptors(path, cache_dir, split=split, max_chains=max_chains)
    out = []
    for receptor in chains:
        rng = np.random.default_rng([seed, int(hashlib.sha256(receptor.name.encode()).hexdigest()[:15], 16)])
        out += chain_complexes(receptor, per_chain, rng, flank=flank, max_residues=max_residues,
                               min_burial=min_burial, counts=tally)
        tally["chains"] += 1
    tally["complexes"] = len(out)
    if counts is not None:
        for k, v in tally.items():
            counts[k] = counts.get(k, 0) + v
    return out


# -- one chain ------------------------------------------------------------------------------

@dataclass
class _Window:
    lo: int  # first residue position (index into the chain's residues)
    hi: int  # last residue position, inclusive
    burial: float


def fragment_windows(receptor: Receptor, *, flank: int = 2, max_residues: int = 3,
                     min_burial: float = MIN_BURIAL, counts: Counter | None = None):
    """The candidate fragments of a chain as (lo, hi, burial) over residue positions (indices
    into the chain's amino-acid residues in order), before the ligand is built; skipped
    windows are counted by reason."""
    counts = counts if counts is not None else Counter()
    starts, complete, bonded, heavy, side = _residue_table(receptor)
    n_res = len(starts) - 1
    neighbours = _neighbour_counts(receptor, starts)
    total = neighbours.sum(1)
    windows = []
    for lo in range(n_res):
        for hi in range(lo, min(lo + max_residues, n_res)):
            if not complete[lo:hi + 1].all():
                counts["incomplete"] += 1
                continue
            if not bonded[lo:hi].all():
                counts["break"] += 1
                continue
            size = heavy[hi] + (heavy[lo:hi].sum() - (hi - lo))  # one OXT, on the last residue
            if not MIN_ATOMS <= size <= MAX_ATOMS:
                counts["size"] += 1
                continue
            atoms = np.arange(starts[lo], starts[hi + 1])
            chosen = atoms[side[atoms]] if side[atoms].any() else atoms
            gone = slice(max(lo - flank, 0), hi + flank + 1)
            score = float((total[chosen] - neighbours[chosen, gone].sum(1)).mean())
            if score < min_burial:
                counts["exposed"] += 1
                continue
            windows.append(_Window(lo, hi, score))
    return windows


def chain_complexes(receptor: Receptor, per_chain: int, rng: np.random.Generator, *, flank: int = 2,
                    max_residues: int = 3, min_burial: float = MIN_BURIAL,
                    counts: Counter | None = None) -> list[SyntheticComplex]:
    """Up to `per_chain` complexes cut from one chain (a `Receptor` of its atoms, residues in
    chain order), fragments drawn at random among the buried windows, none sharing a residue."""
    counts = counts if counts is not None else Counter()
    windows = fragment_windows(receptor, flank=flank, max_residues=max_residues,
                               min_burial=min_burial, counts=counts)
    starts = _residue_table(receptor)[0]
    ids = receptor.residue_id[starts[:-1]]
    used: set[int] = set()
    out = []
    for w in (windows[i] for i in rng.permutation(len(windows))):
        if len(out) == per_chain:
            break
        span = set(range(w.lo, w.hi + 1))
        if span & used:
            continue
        frag = np.zeros(len(receptor), bool)
        frag[starts[w.lo]:starts[w.hi + 1]] = True
        gone = np.zeros(len(receptor), bool)
        gone[starts[max(w.lo - flank, 0)]:starts[min(w.hi + flank + 1, len(starts) - 1)]] = True
        rest = receptor.select(~gone)
        lig_pos = receptor.pos[frag]
        if len(rest) and np.linalg.norm(rest.pos[:, None] - lig_pos[None], axis=-1).min() < MIN_CONTACT:
            counts["contact"] += 1
            continue
        ligand = fragment_ligand(receptor.select(frag))
        if ligand is None:
            counts["sanitize"] += 1
            continue
        used |= span
        residues = tuple(int(i) for i in ids[w.lo:w.hi + 1])
        out.append(SyntheticComplex(f"{receptor.name}_{residues[0]}-{residues[-1]}", rest, ligand,
                                    residues, w.burial))
    return out


def fragment_ligand(fragment: Receptor):
    """The fragment's atoms (complete residues, peptide-bonded, in chain order) as an RDKit
    molecule: amino-acid bond orders, free amine and carboxylic-acid ends (OXT added), explicit
    H with coordinates, stereo from 3-D; heavy atoms at the fragment's exact positions.  None
    when RDKit cannot read or sanitize it, or bonds it differently from the residues'
    topology."""
    from rdkit import Chem, RDLogger

    pos = fragment.pos
    last = fragment.residue_id[-1]
    if "OXT" not in [n for n, r in zip(fragment.atom_name, fragment.residue_id) if r == last]:
        at = {n: p for n, p, r in zip(fragment.atom_name, pos, fragment.residue_id) if r == last}
        u = [(at[n] - at["C"]) / np.linalg.norm(at[n] - at["C"]) for n in ("CA", "O")]
        oxt = at["C"] - 1.25 * (u[0] + u[1]) / np.linalg.norm(u[0] + u[1])
        fragment = Receptor(fragment.name, np.vstack([pos, oxt]), fragment.element + ["O"],
                            fragment.atom_name + ["OXT"], fragment.residue + [fragment.residue[-1]],
                            np.append(fragment.residue_id, last), fragment.chain + [fragment.chain[-1]])
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromPDBBlock(fragment.to_pdb(), removeHs=False, sanitize=True)
        if mol is None or mol.GetNumAtoms() != len(fragment):
            return None
        firsts = np.unique(fragment.residue_id, return_index=True)[1]
        rings = sum(_RINGS.get(fragment.residue[i], 0) for i in firsts)
        if (len(Chem.GetMolFrags(mol)) != 1 or mol.GetRingInfo().NumRings() != rings
                or mol.GetNumBonds() != mol.GetNumAtoms() - 1 + rings):
            return None
        conf = mol.GetConformer()
        for i, p in enumerate(fragment.pos):
            conf.SetAtomPosition(i, p.tolist())
        mol.SetProp("_Name", fragment.name)
        mol = Chem.AddHs(mol, addCoords=True)
        Chem.SanitizeMol(mol)
        Chem.AssignStereochemistryFrom3D(mol)
        return mol
    except Exception:  # RDKit raises several kinds on chemistry it rejects
        return None
    finally:
        RDLogger.EnableLog("rdApp.*")


def _residue_table(receptor: Receptor):
    """Per residue in chain order: atom offsets [R+1] (atoms are grouped by residue), whether
    its heavy atoms are complete, whether it is peptide-bonded to the next [R], its heavy-atom
    count as a ligand's last residue (with OXT); and per atom whether it is a side-chain atom."""
    rid = receptor.residue_id
    change = np.flatnonzero(np.diff(rid) != 0) + 1
    starts = np.concatenate([[0], change, [len(rid)]])
    names = receptor.atom_name
    complete, heavy, c_pos, n_pos = [], [], [], []
    for a, b in zip(starts[:-1], starts[1:]):
        res = receptor.residue[a]
        have = set(names[a:b])
        complete.append(res in RESIDUE_ATOMS and RESIDUE_ATOMS[res] - {"OXT"} <= have)
        heavy.append(b - a + ("OXT" not in have))  # a ligand ends in a carboxylic acid
        where = {n: receptor.pos[i] for i, n in enumerate(names[a:b], start=a)}
        c_pos.append(where.get("C", np.full(3, np.inf)))
        n_pos.append(where.get("N", np.full(3, -np.inf)))
    c_pos, n_pos = np.array(c_pos), np.array(n_pos)
    bonded = np.linalg.norm(c_pos[:-1] - n_pos[1:], axis=1) <= PEPTIDE_BOND
    side = np.array([n not in BACKBONE for n in names])
    return starts, np.array(complete), bonded, np.array(heavy), side


def _neighbour_counts(receptor: Receptor, starts: np.ndarray) -> np.ndarray:
    """[N, R]: for each atom, how many atoms of each residue lie within BURIAL_RADIUS Å."""
    from scipy.spatial import cKDTree

    res_of = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    pairs = cKDTree(receptor.pos).query_pairs(BURIAL_RADIUS, output_type="ndarray")
    counts = np.zeros((len(receptor), len(starts) - 1), dtype=np.int32)
    np.add.at(counts, (pairs[:, 0], res_of[pairs[:, 1]]), 1)
    np.add.at(counts, (pairs[:, 1], res_of[pairs[:, 0]]), 1)
    return counts


# -- reading and caching the chains -----------------------------------------------------------

def load_chain_receptors(path: str | Path | None = None, cache_dir: Path | None = None, *,
                         split: str | None = None, max_chains: int | None = None) -> list[Receptor]:
    """The PDownB chains (first chain of each file, in name order; of one split when given, the
    first `max_chains` when given) as Receptors named like `load_pdownb`'s chains ('1ail_A'),
    read from the archive with `read_receptor`.  All chains are parsed once and cached; while
    there is no cache, a call with max_chains reads just the files it needs (quick tests)."""
    path = Path(path) if path is not None else default_data_root() / PDOWNB
    if not path.is_file():
        raise FileNotFoundError(f"PDownB archive not found: {path} (set MOLGEN_DATA)")
    cache = (cache_dir or default_cache_dir()) / f"pdownb-atoms-{_CACHE_FORMAT}-{path.stat().st_size}.npz"
    if not cache.exists() and max_chains is not None:
        return _read_chains(path, split, max_chains)
    if not cache.exists():
        _write_cache(_read_chains(path), cache)
    with np.load(cache) as data:
        names, lengths = data["names"].tolist(), data["lengths"]
        keep = [i for i, n in enumerate(names) if split is None or split_of(n.split("_")[0]) == split]
        keep = keep[:max_chains] if max_chains is not None else keep
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        atoms = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in keep] or [np.zeros(0, int)])
        pos, rid = data["pos"][atoms].astype(np.float64), data["residue_id"][atoms]
        element, atom_name = data["element"][atoms].tolist(), data["atom_name"][atoms].tolist()
        residue, chain = data["residue"][atoms].tolist(), data["chain"][atoms].tolist()
    out, start = [], 0
    for i in keep:
        s = slice(start, start + lengths[i])
        out.append(Receptor(names[i], pos[s], element[s], atom_name[s], residue[s], rid[s], chain[s]))
        start += lengths[i]
    return out


def _read_chains(archive: Path, split: str | None = None, limit: int | None = None) -> list[Receptor]:
    chains = []
    with tarfile.open(archive) as tar, tempfile.TemporaryDirectory() as tmp:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".pdb")),
                         key=lambda m: m.name)
        for member in members:
            if limit is not None and len(chains) >= limit:
                break
            file = Path(tmp) / Path(member.name).name
            if split is not None and split_of(file.stem) != split:
                continue
            file.write_bytes(tar.extractfile(member).read())
            try:
                receptor = read_receptor(file)
            except DockingInputError:
                continue
            finally:
                file.unlink()
            first = receptor.select(np.array([c == receptor.chain[0] for c in receptor.chain]))
            first.name = f"{file.stem}_{first.chain[0]}"
            chains.append(first)
    return chains


def _write_cache(chains: list[Receptor], cache: Path) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp_cache = cache.with_name(cache.name + ".tmp.npz")
    join = lambda attr: np.array([x for c in chains for x in getattr(c, attr)])  # noqa: E731
    # positions as float32, the precision Bio.PDB reads them at: float64 of these is what
    # read_receptor returns, exactly
    np.savez_compressed(tmp_cache, names=np.array([c.name for c in chains]),
                        lengths=np.array([len(c) for c in chains]),
                        pos=np.concatenate([c.pos for c in chains]).astype(np.float32),
                        residue_id=np.concatenate([c.residue_id for c in chains]).astype(np.int32),
                        element=join("element"), atom_name=join("atom_name"), residue=join("residue"),
                        chain=join("chain"))
    tmp_cache.replace(cache)
