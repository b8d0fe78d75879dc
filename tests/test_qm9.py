"""QM9 reader: EDM's split against the data, item layout, units, the cache, and the xyz parser
of the figshare path (on an inline file; the download itself never runs in tests)."""
import importlib.util
import time

import numpy as np
import pytest
import torch

from molgen.data import qm9

needs_split = pytest.mark.skipif(not (qm9.default_data_root() / qm9.SPLIT_FILE).is_file(),
                                 reason="EDM split file absent (set MOLGEN_DATA)")

# dsgdb9nsd_000001.xyz (methane) as the figshare tarball holds it.
METHANE_XYZ = """5
gdb 1\t157.7118\t157.70997\t157.70699\t0.\t13.21\t-0.3877\t0.1171\t0.5048\t35.3641\t0.044749\t-40.47893\t-40.476062\t-40.475117\t-40.498597\t6.469\t
C\t-0.0126981359\t 1.0858041578\t 0.0080009958\t-0.535689
H\t 0.002150416\t-0.0060313176\t 0.0019761204\t 0.133921
H\t 1.0117308433\t 1.4637511618\t 0.0002765748\t 0.133922
H\t-0.540815069\t 1.4475266138\t-0.8766437152\t 0.133923
H\t-0.5238136345\t 1.4379326443\t 0.9063972942\t 0.133923
1341.307\t1341.3284\t1341.365\t1562.6731\t1562.7453\t3038.3205\t3151.6034\t3151.6788\t3151.7078
C\tC\t
InChI=1S/CH4/h1H4\tInChI=1S/CH4/h1H4
"""


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One cache per test session, at a path test_metrics.py shares, so qm9pack is parsed once."""
    return tmp_path_factory.getbasetemp() / "molgen-cache"


@pytest.fixture(scope="session")
def table(cache_dir):
    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("qm9pack not installed")
    return qm9.load_table(cache_dir=cache_dir)


@pytest.fixture(scope="session")
def train(table, cache_dir):
    if not (qm9.default_data_root() / qm9.SPLIT_FILE).is_file():
        pytest.skip("EDM split file absent (set MOLGEN_DATA)")
    return qm9.QM9("train", cache_dir=cache_dir)


def test_table_covers_qm9(table):
    assert len(table.index) == 130_831 and bool((np.diff(table.index) > 0).all())
    assert table.n_atoms.min() == 3 and table.n_atoms.max() == 29
    assert set(np.unique(table.charges)) == set(qm9.ATOMIC_NUMBERS)
    assert table.positions.shape == (table.n_atoms.sum(), 3)


def test_cache_round_trip_is_identical_and_fast(table, cache_dir):
    start = time.perf_counter()
    again = qm9.load_table(cache_dir=cache_dir)
    assert time.perf_counter() - start < 2.0
    for name in ("index", "n_atoms", "charges", "positions", "properties"):
        np.testing.assert_array_equal(getattr(again, name), getattr(table, name))


@needs_split
def test_edm_split_matches_the_data(table):
    split = qm9.load_edm_split()
    assert {k: len(v) for k, v in split.items()} == {"train": 100_000, "valid": 17_748, "test": 13_083}
    rows = np.concatenate([qm9.rows_of(ids, table.index) for ids in split.values()])
    assert np.array_equal(np.sort(rows), np.arange(len(table.index)))  # a partition of QM9


def test_rows_of_rejects_ids_absent_from_the_data():
    with pytest.raises(ValueError, match="2 split ids are not in the QM9 data"):
        qm9.rows_of(np.array([1, 4, 7]), np.array([1, 2, 3, 5]))


def test_missing_split_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="EDM split file not found"):
        qm9.load_edm_split(tmp_path / "absent.npz")


@needs_split
@pytest.mark.parametrize("split,size", [("valid", 17_748), ("test", 13_083)])
def test_other_splits_load(cache_dir, table, split, size):
    assert len(qm9.QM9(split, cache_dir=cache_dir)) == size


def test_items_are_plain_tensors(train):
    assert len(train) == 100_000
    for i in (0, 1, len(train) - 1):
        item = train[i]
        n = len(item["atom_types"])
        assert item["positions"].shape == (n, 3) and item["positions"].dtype == torch.float32
        assert item["atom_types"].dtype == torch.int64 and item["charges"].dtype == torch.int64
        assert item["properties"].shape == (12,) and item["properties"].dtype == torch.float32
        symbols = [qm9.ATOM_SYMBOLS[t] for t in item["atom_types"]]
        assert [qm9.ATOMIC_NUMBERS[qm9.ATOM_SYMBOLS.index(s)] for s in symbols] == item["charges"].tolist()
    assert train.n_atoms.sum() == len(train.positions)


def test_methane_matches_its_xyz_file(train):
    """gdb 1 (in EDM's train split) against the original file: coordinates in Å, and U0 as
    EDM feeds it: atomisation energy in eV."""
    _, charges, positions, properties = qm9.parse_gdb9_xyz(METHANE_XYZ)
    item = train[int(np.flatnonzero(train.index.numpy() == 1)[0])]
    assert item["charges"].tolist() == charges.tolist() == [6, 1, 1, 1, 1]
    torch.testing.assert_close(item["positions"], torch.tensor(positions, dtype=torch.float32))
    u0_atomisation = (-40.47893 - (-37.846772 + 4 * -0.500273)) * 27.2114
    assert item["properties"][qm9.PROPERTY_NAMES.index("U0")].item() == pytest.approx(u0_atomisation, abs=1e-4)
    assert properties[qm9.PROPERTY_NAMES.index("homo")] == -0.3877


def test_properties_are_in_edm_units_and_plausible(train):
    p = {name: train.properties[:, k].double() for k, name in enumerate(qm9.PROPERTY_NAMES)}
    assert bool((p["homo"] < p["lumo"]).all())
    torch.testing.assert_close(p["gap"], p["lumo"] - p["homo"], rtol=0, atol=0.01)  # eV
    assert -12 < p["homo"].mean() < -5 and 3 < p["gap"].mean() < 10  # eV, not Hartree
    assert 0 <= p["mu"].min() and p["mu"].max() < 30  # Debye
    assert 30 < p["alpha"].mean() < 120 and 500 < p["r2"].mean() < 2000  # Bohr³, Bohr²
    assert 1000 < p["zpve"].mean() < 8000  # meV
    for name in ("U0", "U", "H", "G"):  # atomisation energies, eV
        assert -120 < p[name].min() and p[name].max() < 0
    assert bool((p["G"] > p["H"]).all())  # the −TS term of the molecule is smaller than of its atoms
    assert bool((p["Cv"] < 0).all())  # Cv minus 2.981 per atom, as EDM subtracts it


def test_subtract_thermo_false_gives_totals(table):
    totals = qm9.edm_properties(table, subtract_thermo=False)
    u0 = qm9.PROPERTY_NAMES.index("U0")
    np.testing.assert_allclose(totals[:, u0], table.properties[:, u0] * 27.2114)


def test_xyz_parser_reads_mathematica_exponents():
    text = METHANE_XYZ.replace("0.002150416", "2.150416*^-3")
    index, charges, positions, properties = qm9.parse_gdb9_xyz(text)
    assert index == 1 and positions[1, 0] == pytest.approx(2.150416e-3)
    assert properties.tolist()[:2] == [0.0, 13.21] and properties[-1] == 6.469


def test_excluded_ids_skip_header_lines(tmp_path):
    path = tmp_path / "uncharacterized.txt"
    path.write_text("List of 3054 molecules\n  Index  SMILES\n"
                    + "".join(f"{i} C C 1 2\n" for i in range(10, 3064)))
    ids = qm9.read_excluded_ids(path)
    assert len(ids) == 3054 and min(ids) == 10


def test_figshare_source_parses_the_tarball_without_downloading(tmp_path):
    """The official path end to end on a two-molecule tarball placed where the download would
    put it (present files are not fetched again); molecule 2 is on the excluded list."""
    import io
    import tarfile

    raw = tmp_path / "raw"
    raw.mkdir()
    with tarfile.open(raw / "dsgdb9nsd.xyz.tar.bz2", "w:bz2") as tar:
        for i, text in ((2, METHANE_XYZ.replace("gdb 1\t", "gdb 2\t")), (1, METHANE_XYZ)):
            data = text.encode()
            info = tarfile.TarInfo(f"dsgdb9nsd_{i:06d}.xyz")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (raw / "uncharacterized.txt").write_text("".join(f"{i} x\n" for i in range(2, 3056)))

    table = qm9.load_table("figshare", cache_dir=tmp_path)
    assert table.index.tolist() == [1] and table.charges.tolist() == [6, 1, 1, 1, 1]
    assert (tmp_path / "gdb9-figshare.npz").is_file()


def test_missing_qm9pack_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install 'molgen\\[qm9\\]'"):
        qm9.load_table(cache_dir=tmp_path)


def test_qm9pack_cache_serves_without_qm9pack(monkeypatch, tmp_path):
    """A cache parsed earlier is read even where the package is not installed (a GPU node
    given the cache file), and the cache is what it holds, not a re-parse."""
    _, charges, positions, properties = qm9.parse_gdb9_xyz(METHANE_XYZ)
    table = qm9.QM9Table(index=np.array([1]), n_atoms=np.array([5]), charges=charges,
                         positions=positions.astype(np.float32), properties=properties[None])
    table.save(tmp_path / "qm9pack-1.0.3.npz")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    loaded = qm9.load_table(cache_dir=tmp_path)
    assert loaded.index.tolist() == [1] and loaded.charges.tolist() == [6, 1, 1, 1, 1]


def test_subset_keeps_whole_molecules_and_round_trips(tmp_path):
    """A split's table (what gpu.sh --prepare qm9_train sends): the chosen molecules with
    their own atoms, saved and read back unchanged."""
    sizes = np.array([2, 3, 1, 4])
    table = qm9.QM9Table(index=np.array([3, 5, 8, 9]), n_atoms=sizes,
                         charges=np.arange(10) % 9 + 1, positions=np.arange(30, dtype=np.float32).reshape(10, 3),
                         properties=np.arange(48, dtype=np.float64).reshape(4, 12))
    part = table.subset(np.array([1, 3]))
    assert part.index.tolist() == [5, 9] and part.n_atoms.tolist() == [3, 4]
    assert part.charges.tolist() == table.charges[[2, 3, 4, 6, 7, 8, 9]].tolist()
    assert np.array_equal(part.positions, table.positions[[2, 3, 4, 6, 7, 8, 9]])
    part.save(tmp_path / "part.npz")
    loaded = qm9.QM9Table.load(tmp_path / "part.npz")
    for key in ("index", "n_atoms", "charges", "positions", "properties"):
        assert np.array_equal(getattr(loaded, key), getattr(part, key))
    assert qm9.rows_of(np.array([9]), loaded.index).tolist() == [1]
    with pytest.raises(ValueError, match="1 split ids are not in the QM9 data"):
        qm9.rows_of(np.array([3]), loaded.index)
