"""Protein chains as Cα traces: a reader for any PDB or mmCIF file (Bio.PDB), the PDownB set of
827 single-chain X-ray structures read in place from its archive, and a fixed split.

A chain's trace is the Cα positions [L, 3] (Å) of its standard amino-acid residues in chain
order.  Where consecutive Cα atoms are further apart than BREAK (a chain break: missing
residues), the trace is cut into contiguous *segments*; models train on segments, never
across a gap.  Common modified residues (MSE, ...) count as their parent amino acid.

Split.  By chain, fixed once: a chain's part follows a hash of its PDB ID (80% train, 10%
validation, 10% test), so it never changes with the archive's order or content, and test
chains take no part in training or model selection.
"""
from __future__ import annotations

import hashlib
import io
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .paths import default_cache_dir, default_data_root

PDOWNB = "proteins/pdownb_single_chain_40-256.tar.gz"
BREAK = 4.2
"""Å: consecutive Cα atoms further apart than this are not bonded (ideal trans: 3.80 Å)."""
SPLITS = {"train": (0, 80), "valid": (80, 90), "test": (90, 100)}
"""Each split's range of hash(PDB ID) mod 100."""
AMINO_ACIDS = ("ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU", "LYS",
               "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL")
MODIFIED = {"MSE": "MET", "CSO": "CYS", "CSD": "CYS", "CME": "CYS", "SEP": "SER", "TPO": "THR",
            "PTR": "TYR", "HYP": "PRO", "MLY": "LYS", "KCX": "LYS", "SEC": "CYS", "PYL": "LYS"}
"""Modified residues read as their parent amino acid."""
_CACHE_FORMAT = 1


class ProteinInputError(ValueError):
    """A structure file that cannot be used; its message is one line."""


@dataclass
class Chain:
    """One chain: its name (file stem and chain ID), residue names and Cα positions [L, 3],
    and the residues' numbers in the file (when read from one; the PDownB cache keeps none)."""

    name: str
    residues: list[str]
    ca: np.ndarray
    numbers: list[int] | None = None

    def segments(self, min_length: int = 1) -> list[np.ndarray]:
        """The contiguous pieces of the trace (cut where consecutive Cα are > BREAK apart)
        with at least min_length residues."""
        gaps = np.linalg.norm(np.diff(self.ca, axis=0), axis=1) > BREAK
        pieces = np.split(self.ca, np.flatnonzero(gaps) + 1)
        return [p for p in pieces if len(p) >= min_length]


def parse_structure(source, name: str, fmt: str, error: type[ValueError] = ProteinInputError):
    """The Bio.PDB structure in a PDB or mmCIF file (a path, or a text stream; `fmt` 'pdb' |
    'cif'); `error` with a one-line message where the file cannot be read."""
    from Bio.PDB import MMCIFParser, PDBParser
    from Bio.PDB.PDBExceptions import PDBConstructionWarning

    text = Path(source).read_text(errors="replace") if isinstance(source, (str, Path)) else source.read()
    if fmt == "pdb":  # Bio.PDB indexes a short record past its end (an IndexError)
        for number, line in enumerate(text.splitlines(), 1):
            if line.startswith(("ATOM", "HETATM")) and len(line) < 54:
                raise error(f"{name}: line {number} is a truncated {line[:6].strip()} record "
                            f"({len(line)} columns; its coordinates take columns 31-54)")
    parser = MMCIFParser(QUIET=True) if fmt == "cif" else PDBParser(QUIET=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PDBConstructionWarning)
            return parser.get_structure(name, io.StringIO(text))
    except Exception as exc:  # Bio.PDB fails on malformed files in many ways
        raise error(f"{name}: not a readable {fmt.upper()} file "
                    f"({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None


def read_chains(source, name: str | None = None, fmt: str | None = None) -> list[Chain]:
    """Every protein chain of the first model of a PDB or mmCIF file (a path, or a text
    stream with `name` and `fmt` 'pdb' | 'cif'); ProteinInputError if there is none."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name.split(".")[0]
        fmt = fmt or ("cif" if ".cif" in path.name.lower() else "pdb")
        if not path.is_file():
            raise ProteinInputError(f"{path}: no such file")
    structure = parse_structure(source, name, fmt)
    models = list(structure)
    chains = []
    for chain in (models[0] if models else []):
        residues, ca, numbers = [], [], []
        for residue in chain:
            resname = MODIFIED.get(residue.get_resname(), residue.get_resname())
            if resname in AMINO_ACIDS and "CA" in residue:
                residues.append(resname)
                ca.append(residue["CA"].get_coord())
                numbers.append(residue.get_id()[1])
        if residues:
            chains.append(Chain(f"{name}_{chain.id}", residues, np.asarray(ca, dtype=np.float64),
                                numbers))
    if not chains:
        raise ProteinInputError(f"{name}: no protein chain (no amino-acid residue with a CA atom)")
    return chains


def split_of(pdb_id: str) -> str:
    """'train' | 'valid' | 'test' of a chain, by a fixed hash of its PDB ID."""
    bucket = int(hashlib.sha256(pdb_id.lower().encode()).hexdigest(), 16) % 100
    return next(s for s, (lo, hi) in SPLITS.items() if lo <= bucket < hi)


def load_pdownb(split: str, path: str | Path | None = None,
                cache_dir: Path | None = None) -> list[Chain]:
    """The PDownB chains of one split (first chain of each file), read from the archive in
    $MOLGEN_DATA and cached as arrays (parsing all 827 files takes a minute)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    path = Path(path) if path is not None else default_data_root() / PDOWNB
    if not path.is_file():
        raise FileNotFoundError(f"PDownB archive not found: {path} (set MOLGEN_DATA)")
    cache = (cache_dir or default_cache_dir()) / f"pdownb-{_CACHE_FORMAT}-{path.stat().st_size}.npz"
    if not cache.exists():
        _write_cache(path, cache)
    with np.load(cache) as data:
        names, lengths, ca = data["names"].tolist(), data["lengths"], data["ca"]
        residues = data["residues"].tolist()
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return [Chain(n, residues[offsets[i]:offsets[i + 1]], ca[offsets[i]:offsets[i + 1]])
            for i, n in enumerate(names) if split_of(n.split("_")[0]) == split]


def _write_cache(archive: Path, cache: Path) -> None:
    chains = []
    with tarfile.open(archive) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if not member.isfile() or not member.name.endswith(".pdb"):
                continue
            text = tar.extractfile(member).read().decode("latin-1")
            try:
                chains.append(read_chains(io.StringIO(text), Path(member.name).stem, "pdb")[0])
            except ProteinInputError:
                continue
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez(tmp, names=np.array([c.name for c in chains]),
             lengths=np.array([len(c.residues) for c in chains]),
             residues=np.array([r for c in chains for r in c.residues]),
             ca=np.concatenate([c.ca for c in chains]))
    tmp.replace(cache)


def to_structure(traces, name: str = "molgen"):
    """Cα traces [L, 3] (Å) as one Bio.PDB Structure with a model per trace, each a chain A of
    glycines that hold a CA atom: what PyMOL or ChimeraX show as a Cα trace."""
    from Bio.PDB.StructureBuilder import StructureBuilder

    builder = StructureBuilder()
    builder.init_structure(name)
    for m, trace in enumerate(traces):
        builder.init_model(m, m + 1)
        builder.init_chain("A")
        builder.init_seg("    ")
        for i, xyz in enumerate(np.asarray(trace, dtype=np.float32), start=1):
            builder.init_residue("GLY", " ", i, " ")
            builder.init_atom("CA", xyz, 0.0, 1.0, " ", " CA ", i, "C")
    return builder.get_structure()


def traces_of(structure) -> list[np.ndarray]:
    """The Cα trace [L, 3] of the first chain of each model of a Bio.PDB Structure."""
    return [np.array([atom.get_coord() for atom in next(iter(model)).get_atoms()
                      if atom.get_id() == "CA"], dtype=np.float64) for model in structure]


def write_pdb(path: str | Path, structure) -> None:
    """A Bio.PDB Structure as a PDB file (several models as MODEL 1 … n)."""
    from Bio.PDB import PDBIO

    io_ = PDBIO()
    io_.set_structure(structure)
    io_.save(str(path))
