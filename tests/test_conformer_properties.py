"""Property-based tests (hypothesis) of the conformer API and CLI: for any input, either a
one-line ConformerInputError / ValueError (exit 2 from the CLI), or conformers that pass
sanity: every atom present, bonds within ETKDG's bounds (+ BOND_SLACK), no two non-bonded
atoms closer than 0.5 Å, the input's stereo kept, an SDF that RDKit reads back whole.  Where
ETKDG itself cannot embed a molecule within its bounds (or embeds fewer structures than a
rigid molecule needs), a one-line warning must say so.

The default run draws EXAMPLES inputs per test (about 15 s in all); `-m slow` runs
SLOW_EXAMPLES and prints the counts of each outcome."""
import contextlib
import io
import math
import os
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import numbers
from rdkit import Chem, RDLogger

from molgen.conformers.api import BOND_SLACK, MAX_CONFS, MAX_SEED, bond_excess, generate_conformers
from molgen.conformers.inputs import ConformerInputError, to_molecule

RDLogger.DisableLog("rdApp.*")
EXAMPLES = int(os.environ.get("MOLGEN_HYPOTHESIS_EXAMPLES", 100))
SLOW_EXAMPLES = 10_000
REAL = ["CC(=O)Oc1ccccc1C(=O)O", "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O", "C/C=C/C(=O)N[C@H](C)CO",
        "O=C1CCCN1c1ccc(F)cc1", "CN1CCN(CC1)c1ncnc2[nH]ccc12", "OC[C@H]1O[C@@H](O)[C@H](O)[C@@H]1O",
        "Clc1ccc(cc1)C(=O)NCCS(=O)(=O)N", "C1CC2CCC1CC2", "N#Cc1cccc(c1)/C=C\\Br", "CCOP(=O)(OCC)C#N"]
ALPHABET = list("CCCNNOcccnos()=#12[]@+-H/\\FSlBr.")
OUTCOMES: dict[str, int] = {}


@st.composite
def mutated(draw) -> str:
    """A real SMILES with up to three random deletions, insertions or swaps."""
    smiles = list(draw(st.sampled_from(REAL)))
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(smiles) - 1))
        op = draw(st.sampled_from(["delete", "insert", "swap"]))
        if op == "delete" and len(smiles) > 1:
            del smiles[i]
        elif op == "insert":
            smiles.insert(i, draw(st.sampled_from(ALPHABET)))
        else:
            j = draw(st.integers(0, len(smiles) - 1))
            smiles[i], smiles[j] = smiles[j], smiles[i]
    return "".join(smiles)


inputs = st.one_of(st.text(alphabet=ALPHABET, min_size=1, max_size=24), mutated())


def stereo_of(mol: Chem.Mol) -> tuple[dict, dict]:
    """Assigned tetrahedral centres (atom → R/S) and double bonds (bond → E/Z) of mol."""
    mol = Chem.Mol(mol)
    Chem.AssignStereochemistry(mol, cleanIt=True, force=True)
    centres = dict(Chem.FindMolChiralCenters(mol, useLegacyImplementation=True))
    bonds = {b.GetIdx(): b.GetStereo() for b in mol.GetBonds()
             if b.GetStereo() in (Chem.BondStereo.STEREOE, Chem.BondStereo.STEREOZ)}
    return centres, bonds


def assert_sane(source: Chem.Mol, out: Chem.Mol, num_confs: int, notes: str = "") -> None:
    """Sanity of out's conformers; `notes` (the warnings of the call) may excuse fewer
    conformers of a rigid molecule, or a strained bond, each in its own words."""
    assert out.GetNumAtoms() == source.GetNumAtoms()
    assert out.GetNumConformers() == num_confs or \
        (0 < out.GetNumConformers() < num_confs and f"embedded {out.GetNumConformers()} of" in notes)
    centres, bonds = stereo_of(source)
    bonded = Chem.GetAdjacencyMatrix(out).astype(bool)
    for conformer in out.GetConformers():
        pos = conformer.GetPositions()
        assert bond_excess(out, [torch.tensor(pos)])[0] <= BOND_SLACK or "its own bond bounds" in notes
        d = ((pos[:, None] - pos[None]) ** 2).sum(-1) ** 0.5
        d[bonded] = math.inf
        d[range(len(d)), range(len(d))] = math.inf
        assert d.min() >= 0.5
        single = Chem.Mol(out, confId=conformer.GetId())
        Chem.AssignStereochemistryFrom3D(single, confId=conformer.GetId())
        got_centres, got_bonds = stereo_of(single)
        assert {a: got_centres.get(a) for a in centres} == centres
        assert {b: got_bonds.get(b) for b in bonds} == bonds
        back = Chem.MolFromMolBlock(Chem.MolToMolBlock(out, confId=conformer.GetId()), removeHs=False)
        assert back is not None and back.GetNumAtoms() == out.GetNumAtoms()


def check_smiles(smiles: str, seed: int) -> str:
    """Either a one-line refusal or sane conformers; returns which."""
    try:
        source = to_molecule(smiles)
    except ConformerInputError as exc:
        assert "\n" not in str(exc) and str(exc)
        return "refused"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            out = generate_conformers(source, 2, seed=seed)
    except ConformerInputError as exc:  # e.g. RDKit could not embed it
        assert "\n" not in str(exc) and str(exc)
        return "not embedded"
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert all("\n" not in note for note in notes)
    assert_sane(source, out, 2, " ".join(notes))
    return "conformers with a note" if notes else "conformers"


def run_smiles(smiles: str, seed: int) -> None:
    outcome = check_smiles(smiles, seed)
    OUTCOMES[outcome] = OUTCOMES.get(outcome, 0) + 1


common = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@common
@given(st.text(alphabet=ALPHABET, min_size=1, max_size=24), st.integers(0, MAX_SEED))
def test_random_smiles_alphabet_strings(smiles, seed):
    run_smiles(smiles, seed)


@common
@given(mutated(), st.integers(0, MAX_SEED))
def test_mutated_real_molecules(smiles, seed):
    run_smiles(smiles, seed)


@common
@given(st.sampled_from(REAL), st.sampled_from(REAL), st.integers(0, 2))
def test_fragments_are_refused(a, b, seed):
    assert check_smiles(f"{a}.{b}", seed) == "refused"




@common
@given(st.fixed_dictionaries({}, optional={
    "num_confs": numbers, "seed": numbers, "batch_size": numbers, "local_structures": numbers,
    "oversample": numbers, "clash_steps": numbers, "prune_rms": numbers,
    "relax": st.one_of(numbers, st.sampled_from(["mmff", "uff", "MMFF"]))}))
def test_options_at_and_beyond_every_bound(options):
    """Options are checked before any work: a one-line ValueError naming the option, or
    accepted (checked on an empty list, so an accepted 10,000 costs nothing)."""
    try:
        assert generate_conformers([], **options) == []
    except ValueError as exc:
        message = str(exc)
        assert "\n" not in message and any(name in message for name in options), message
        return
    for name, low, high in (("num_confs", 1, MAX_CONFS), ("seed", 0, MAX_SEED)):
        if name in options:
            assert type(options[name]) is int and low <= options[name] <= high


@common
@given(inputs, st.integers(-3, 3))
def test_cli_either_writes_a_readable_sdf_or_says_why_in_one_line(tmp_path_factory, smiles, n):
    from molgen.cli import main

    out = tmp_path_factory.mktemp("cli") / "out.sdf"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(["conformers", smiles, "-n", str(n), "-o", str(out)])
        except SystemExit as exc:  # argparse's own one-line usage error (a SMILES like "-C")
            code = exc.code
    lines = [line for line in err.getvalue().replace("\r", "\n").splitlines()
             if line.startswith("molgen") and not line.startswith("molgen: note: ")]
    assert "Traceback" not in err.getvalue()
    if code == 0:
        assert n >= 1 and not lines
        with Chem.SDMolSupplier(str(out), removeHs=False) as supplier:
            assert sum(m is not None for m in supplier) == n
    else:  # 2: refused before any work; 1: the molecule failed (an SDF without it)
        assert code in (1, 2) and len(lines) == 1 and (code == 1 or not out.exists())


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(inputs, st.integers(0, MAX_SEED))
def test_many_inputs(smiles, seed):
    run_smiles(smiles, seed)


@pytest.fixture(autouse=True, scope="module")
def report_outcomes():
    yield
    print(f"\nconformer property tests, outcomes: {OUTCOMES}")
