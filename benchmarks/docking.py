"""Redocking on CASF-2016 core and Astex diverse: pose RMSD, PoseBusters validity, CPU cost.

For every complex (molgen.docking.complexes) and method: the receptor is read with
molgen.docking.receptor.read_receptor (standard residues and metal ions; cofactors, waters and
other hetero groups dropped), the box is ligand_box(crystal ligand) (PoseBusters' box:
heavy-atom centroid, extent + 10 Å), and the ligand starts from one seeded ETKDGv3 conformer
of the crystal ligand's molecule (stereo from the crystal coordinates) minimised with MMFF94,
never from the crystal coordinates.  The method returns ranked poses; recorded per complex:

  top1 / top5 / oracle   symmetry-aware heavy-atom RMSD (Å) to the crystal pose, in place
                         (no superposition: rdMolAlign.CalcRMS), of the best-ranked pose, the
                         best of the first five, the best of all returned
  pair_rmsd              the same RMSD between every two returned poses (upper triangle, row
                         by row): what a re-ranking by pose consensus reads offline
  candidates             molgen methods: every refined pose before the ranking — its Vina
                         score, intermolecular terms, intramolecular energy, RMSD to the
                         crystal and to each other pose (`candidates`): re-rankings read offline
                         with --rescore also each pose's 'vinardo' score, as it is and
                         after vinardo's local optimisation (and that pose's RMSD)
  pb_valid, pb_failed    PoseBusters 'redock' checks of the top-1 pose against the crystal
                         ligand and the receptor actually docked into (Receptor.to_pdb());
                         valid = every check passes except the RMSD ≤ 2 Å one, which is
                         reported as the RMSD itself; pb_failed names the failing checks
  cpu_s                  CPU seconds of the method (time.process_time, one thread), including
                         the receptor's preparation (done once per complex and charged to
                         every method that uses it)

Per-complex results are kept in <out stem>_complexes.json (default
benchmarks/results/docking_complexes.json), keyed "set/name/method", and written after each
complex: with --merge the pairs already there are skipped, so a long run can be stopped and
resumed.  The summary (<out>, default benchmarks/results/docking.json) gives per set and
method the top-1 / top-5 / oracle success rates (RMSD < 2 Å), the median top-1 RMSD, the
PoseBusters-valid fraction, "RMSD < 2 Å and PB-valid", mean CPU seconds, and paired
comparisons of the methods on their common complexes (wins / losses at top-1 < 2 Å, exact
McNemar p).  A failed complex (preparation or docking error) counts as not successful.
The figure <out>.png shows the cumulative distribution of top-1 RMSD per set and method;
<out stem>_poses.png the crystal ligand and molgen's top-1 pose in the pocket for the first
complexes docked by the run.

Methods (METHODS: name -> function(complex, receptor, start_mol, box, seed) ->
(ranked poses, cpu_seconds)):
  vina1, vina8, vina32   AutoDock Vina 1.2 (molgen.docking.vina), exhaustiveness 1 / 8 / 32,
                         9 poses, one CPU thread; meeko preparation
  molgen                 `dock`: its default number of poses (api.NUM_POSES: 60 since
                         2026-12-01, 40 before) sampled by the pose model (--checkpoint, default the
                         shipped one), each the start of a Monte-Carlo chain on molgen's torch
                         version of Vina's function (molgen.docking.refine.search, its default
                         rounds × Adam steps: 40 × 60 since 2026-12-03, 80 × 30 from
                         2026-11-30, 40 × 30 before; `molgen` rows of a result file are the
                         default of its date), ranked by it, near-duplicates left out (since
                         2026-11-30: a pose within 1 Å of a better one)
  molgen_local           the same with 0 rounds: each sampled pose only locally optimised
  molgen_r20, molgen_r40, molgen_r80  the same with 20, 40 or 80 rounds of 30 Adam steps each
  molgen_r40_s60         40 rounds of 60 Adam steps each (the default since 2026-12-03; 80 × 30
                         before: the same Adam steps, half the mutations)
  molgen_r20_s120        20 rounds of 120 Adam steps each: the same Adam steps again, half the
                         mutations of the default (59 against its 64 of 100 validation
                         complexes at top-1, 2026-12-03)
  molgen_lr04            molgen with Adam's step size 0.04 in every local optimisation (the default: 0.02)
  molgen_etkdg           molgen with the ligand's ETKDG local structures not minimised with
                         MMFF94 (api.LOCAL_STRUCTURE_FORCEFIELD = None)
  molgen_ls1             molgen with all its poses on one local structure (the default: one per 4 poses,
                         api.POSES_PER_LOCAL_STRUCTURE = 4), as Vina searches one: no ring or
                         bond-angle variants, more chains searching it
  molgen_n40, molgen_n60 molgen with 40 or 60 sampled poses (Monte-Carlo chains)
  molgen_raw             the learned model alone: its raw poses in sampling order (top-1 is
                         the first sample: the model has no confidence head)
  molgen_w<w>            molgen with classifier-free guidance weight w over the pocket (0: the
                         plain conditional model), for the sweep w = 0, 0.5, 1, 2, 4
  molgen_raw_w<w>        molgen_raw with guidance weight w: the sweep on the learned model alone
  random_opt             the floor: 40 random placements from the pose prior, searched from
                         and ranked as molgen's are (random_opt_r20: with 20 rounds of 30 steps)

    python benchmarks/docking.py --sets astex --limit 5 --methods vina8
    OMP_NUM_THREADS=1 python benchmarks/docking.py --sets astex casf2016 --methods vina8 --merge
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import rdkit
from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem

from molgen.conformers.api import embed
from molgen.conformers.rmsd import heavy_atom_rmsd
from molgen.docking.complexes import OVERLAP, SETS, Complex, ligand_box, load_complexes
from molgen.docking.receptor import Receptor, read_receptor

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "docking.json"
SUCCESS = 2.0  # Å
CASF_REPORTED = 46
"""The CASF-2016 complexes reported (`--part test`): the first 46 by PDB ID, those Vina had
finished when molgen was first compared with it.  The other 238, less the one whose PDB ID or
ligand skeleton (InChIKey's first block) is also in Astex (2br1), are the validation part
(`--part valid`, 237): docking settings are chosen there since 2026-12-01.  Astex is test only."""


# --------------------------------------------------------------------------- methods

_PDBQT: dict[str, tuple[str, float, list[str]]] = {}


def vina_receptor(receptor: Receptor) -> tuple[str, float, list[str]]:
    """The receptor's PDBQT, the CPU seconds it took and meeko's warnings, made once per
    receptor per process."""
    from molgen.docking.vina import prepare_receptor

    if receptor.name not in _PDBQT:
        _PDBQT.clear()  # one complex at a time
        start = time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pdbqt = prepare_receptor(receptor)
        _PDBQT[receptor.name] = (pdbqt, time.process_time() - start,
                                 [str(w.message) for w in caught])
    return _PDBQT[receptor.name]


def vina_method(exhaustiveness: int):
    def run(complex_: Complex, receptor: Receptor, start_mol: Chem.Mol, box, seed: int):
        from molgen.docking.vina import vina_dock

        pdbqt, prep_s, _ = vina_receptor(receptor)
        start = time.process_time()
        poses = vina_dock(pdbqt, start_mol, box, exhaustiveness=exhaustiveness, seed=seed)
        return poses, prep_s + time.process_time() - start
    run.__doc__ = f"AutoDock Vina, exhaustiveness {exhaustiveness}"
    return run


POSES = 40
"""Random placements of the floor (random_opt), as many as `dock` sampled when it was measured
(Vina returns its 9 best)."""
_MODEL: dict[str, object] = {}


def docking_model():
    """The pose model of --checkpoint (the shipped one by default), loaded once."""
    from molgen.docking.api import DockingModel

    if "model" not in _MODEL:
        _MODEL["model"] = DockingModel.load(_MODEL.get("path"))
    return _MODEL["model"]


def molgen_method(*, guidance: float | None = None, refine: bool = True, search: dict | None = None,
                  relaxed: bool = True, structures: int | None = None, n: int | None = None):
    def run(complex_: Complex, receptor: Receptor, start_mol: Chem.Mol, box, seed: int):
        from molgen.docking import api
        from molgen.docking.refine import SearchConfig

        config, count = refine and SearchConfig(**(search or {})), api.NUM_POSES if n is None else n
        forcefield, per_structure = api.LOCAL_STRUCTURE_FORCEFIELD, api.POSES_PER_LOCAL_STRUCTURE
        if not relaxed:  # the ablation: local structures as ETKDG embeds them
            api.LOCAL_STRUCTURE_FORCEFIELD = None
        if structures is not None:  # the poses spread over this many local structures
            api.POSES_PER_LOCAL_STRUCTURE = math.ceil(count / structures)
        ranked, captured = api.ranked_poses, {}

        def capture(ligand, positions, physics):  # every refined pose, before the ranking
            captured.update(ligand=ligand, positions=positions, physics=physics)
            return ranked(ligand, positions, physics)

        api.ranked_poses = capture
        start = time.process_time()
        try:
            with warnings.catch_warnings():  # dropped hetero groups are in the record already
                warnings.simplefilter("ignore")
                poses = api.dock(receptor, start_mol, box_center=box[0], box_size=box[1], n=count,
                                 seed=seed, guidance=guidance, refine=config, model=docking_model())
        finally:
            api.LOCAL_STRUCTURE_FORCEFIELD, api.POSES_PER_LOCAL_STRUCTURE = forcefield, per_structure
            api.ranked_poses = ranked
        cpu_s = time.process_time() - start
        if captured.get("physics") is None:
            return poses, cpu_s
        found = candidates(complex_.ligand, **captured)
        if RESCORE["on"]:
            found.update(rescore(complex_, receptor, box, captured["ligand"], captured["positions"]))
        return poses, cpu_s, {"candidates": found}
    run.__doc__ = (f"molgen, {n or 'the default number of'} poses, guidance {'default' if guidance is None else guidance}, "
                   + ("raw (sampling order)" if not refine else
                      f"Monte-Carlo search on Vina ({search or 'default'}), ranked")
                   + ("" if relaxed else ", ETKDG local structures not minimised")
                   + ("" if structures is None else f", {structures} local structure(s)"))
    return run


def candidates(crystal: Chem.Mol, ligand: Chem.Mol, positions, physics) -> dict:
    """Every refined pose of a molgen run (the ligand as `dock` prepared it, all atoms'
    positions per pose) before ranking, in chain order, for re-rankings read
    offline: Vina's score as `dock` ranks by it, the five unweighted intermolecular terms
    (molgen.docking.scoring.TERMS), the intramolecular energy (kcal/mol), the in-place RMSD
    to the crystal pose and between every two poses (upper triangle, row by row)."""
    import torch

    from molgen.conformers.rmsd import pairwise_heavy_atom_rmsd
    from molgen.docking.api import _with_conformers

    with torch.no_grad():
        allpos = torch.cat(positions)
        heavy = physics.heavy(allpos)
        scores = physics.vina_scores(allpos)
        terms = physics.score.inter_terms(heavy, physics.ligand.types)
        intra = physics.score.intra(heavy, physics.ligand.types, physics.ligand.pairs)
    mol = _with_conformers(ligand, positions)
    pair = pairwise_heavy_atom_rmsd(mol, align=False)
    rmsd = [float(r) for r in heavy_atom_rmsd(mol, crystal, align=False)]
    return {"scores": [round(float(v), 4) for v in scores], "rmsd": [round(r, 4) for r in rmsd],
            "inter_terms": [[round(float(v), 4) for v in row] for row in terms],
            "intra": [round(float(v), 4) for v in intra],
            "pair_rmsd": [round(float(v), 3) for v in pair[np.triu_indices(len(rmsd), 1)]]}


RESCORE = {"on": False, "poses": None}
"""--rescore: whether candidates() is followed by rescore(); --save-poses: its folder."""


def rescore(complex_: Complex, receptor: Receptor, box, ligand: Chem.Mol, positions) -> dict:
    """The candidates rescored by AutoDock Vina's 'vinardo' function (molgen.docking.vina.
    VinaScorer; receptor typed by meeko as for Vina): each pose's score as it is, its score
    after vinardo's local optimisation and that optimised pose's in-place RMSD to the crystal,
    and the CPU seconds this took (not charged to the method).  The grid maps cover the box
    and every pose, 3 Å beyond.  With --save-poses the poses
    (all atoms, chain order, their scores as SD properties) go to <dir>/<set>_<name>.sdf.gz."""
    import gzip

    from molgen.docking.api import _with_conformers
    from molgen.docking.vina import VinaScorer

    start = time.process_time()
    pdbqt, _, _ = vina_receptor(receptor)
    mol = _with_conformers(ligand, positions)
    poses = [Chem.Mol(mol, confId=c.GetId()) for c in mol.GetConformers()]
    # Vina refuses a ligand outside its grid, and a pose may reach past the docking box
    xyz = np.concatenate([c.GetPositions() for c in mol.GetConformers()])
    low, high = np.minimum(xyz.min(0), np.subtract(box[0], np.divide(box[1], 2))) - 3, \
        np.maximum(xyz.max(0), np.add(box[0], np.divide(box[1], 2))) + 3
    scorer = VinaScorer(pdbqt, poses[0], ((low + high) / 2, high - low), scoring="vinardo")
    scores, optimised = [scorer.score(p) for p in poses], [scorer.optimize(p) for p in poses]
    out = {"vinardo": [round(v, 4) for v in scores],
           "vinardo_opt": [round(e, 4) for _, e in optimised],
           "vinardo_opt_rmsd": [round(rmsd_in_place(p, complex_.ligand), 4) for p, _ in optimised],
           "rescore_cpu_s": round(time.process_time() - start, 2)}
    if RESCORE["poses"] is not None:
        RESCORE["poses"].mkdir(parents=True, exist_ok=True)
        path = RESCORE["poses"] / f"{complex_.set}_{complex_.name}.sdf.gz"
        with gzip.open(path, "wt") as f:
            writer = Chem.SDWriter(f)
            for i, pose in enumerate(poses):
                pose.SetProp("_Name", f"{complex_.name} candidate {i}")
                pose.SetDoubleProp("vinardo", scores[i])
                pose.SetDoubleProp("vinardo_opt", optimised[i][1])
                writer.write(pose)
            writer.close()
    return out


def random_floor(complex_: Complex, receptor: Receptor, start_mol: Chem.Mol, box, seed: int, *,
                 rounds: int | None = None):
    """POSES random placements (the pose prior: a uniform rotation, random torsions, the
    centroid near the box centre) searched from and ranked exactly as molgen's poses are."""
    import torch

    from molgen.docking.api import LOCAL_STRUCTURE_FORCEFIELD, POSES_PER_LOCAL_STRUCTURE, ranked_poses
    from molgen.docking.data import local_structures, pocket_of
    from molgen.docking.pose import Docking, PoseSpace
    from molgen.docking.refine import Physics, SearchConfig, search

    start = time.process_time()
    mol = Chem.Mol(start_mol)
    physics = Physics.of(receptor, mol, *box)
    structures = local_structures(mol, math.ceil(POSES / POSES_PER_LOCAL_STRUCTURE), seed,
                                  forcefield=LOCAL_STRUCTURE_FORCEFIELD)
    centre = torch.as_tensor(box[0], dtype=torch.float32)
    pocket = pocket_of(receptor, box[0])
    space = PoseSpace([Docking(structures[j % len(structures)], pocket, centre) for j in range(POSES)])
    generator = torch.Generator().manual_seed(seed)
    x = space.noise(torch.empty(len(space.batch), 1), generator)
    config = SearchConfig() if rounds is None else SearchConfig(rounds=rounds, steps=30)
    x, _ = search(space, x, physics, config=config, generator=generator)
    positions = list(space.positions(x).detach().split(structures[0].graph.num_atoms))
    ranked = ranked_poses(mol, positions, physics)
    poses = [Chem.Mol(ranked, confId=c.GetId()) for c in ranked.GetConformers()]
    for pose, conf in zip(poses, ranked.GetConformers()):
        pose.SetDoubleProp("vina_score", conf.GetDoubleProp("vina_score"))
    return poses, time.process_time() - start


GUIDANCE_SWEEP = (0.0, 0.5, 1.0, 2.0, 4.0)
METHODS = {"vina1": vina_method(1), "vina8": vina_method(8), "vina32": vina_method(32),
           "molgen": molgen_method(), "molgen_raw": molgen_method(refine=False),
           "molgen_local": molgen_method(search=dict(rounds=0)),
           **{f"molgen_r{r}": molgen_method(search=dict(rounds=r, steps=30)) for r in (20, 40, 80)},
           **{f"molgen_r{r}_s{n}": molgen_method(search=dict(rounds=r, steps=n)) for r, n in ((40, 60), (20, 120))},
           "molgen_lr04": molgen_method(search=dict(lr=0.04)),
           "molgen_etkdg": molgen_method(relaxed=False),
           "molgen_ls1": molgen_method(structures=1),
           "molgen_n40": molgen_method(n=40), "molgen_n60": molgen_method(n=60),
           "random_opt": random_floor, "random_opt_r20": functools.partial(random_floor, rounds=20),
           **{f"molgen_w{w:g}": molgen_method(guidance=w) for w in GUIDANCE_SWEEP},
           **{f"molgen_raw_w{w:g}": molgen_method(guidance=w, refine=False) for w in GUIDANCE_SWEEP}}
"""name -> function(complex, receptor, start_mol, box, seed) -> (ranked poses, cpu seconds);
poses are copies of start_mol (same atoms) with one conformer each, best first."""


# --------------------------------------------------------------------------- evaluation

def start_conformer(crystal: Chem.Mol, seed: int) -> Chem.Mol:
    """The crystal ligand's molecule (same atoms and order, stereo from its coordinates) with
    one seeded ETKDGv3 conformer minimised with MMFF94 (UFF if MMFF has no parameters)."""
    mol = Chem.Mol(crystal)
    Chem.AssignStereochemistryFrom3D(mol)
    work = Chem.Mol(mol)  # MMFF typing changes aromaticity flags: keep them off the result
    positions = embed(work, 1, seed)
    if not positions:
        raise ValueError("ETKDG could not embed the ligand")
    conf = Chem.Conformer(mol.GetNumAtoms())
    for i, p in enumerate(positions[0].tolist()):
        conf.SetAtomPosition(i, p)
    conf.Set3D(True)
    work.AddConformer(conf, assignId=True)
    if AllChem.MMFFHasAllMoleculeParams(work):
        AllChem.MMFFOptimizeMolecule(work)
    else:
        AllChem.UFFOptimizeMolecule(work)
    mol.RemoveAllConformers()
    mol.AddConformer(Chem.Conformer(work.GetConformer()), assignId=True)
    return mol


def rmsd_in_place(pose: Chem.Mol, crystal: Chem.Mol) -> float:
    """Symmetry-aware heavy-atom RMSD without superposition (molgen.conformers.rmsd)."""
    return float(heavy_atom_rmsd(pose, crystal, align=False)[0])


def pose_distances(poses: list[Chem.Mol]) -> list[float]:
    """Symmetry-aware in-place heavy-atom RMSD between every two returned poses (the upper
    triangle of the matrix, row by row, to 0.001 Å): what a re-ranking by pose consensus
    reads, offline."""
    from molgen.conformers.rmsd import pairwise_heavy_atom_rmsd

    mol = Chem.Mol(poses[0])
    mol.RemoveAllConformers()
    for pose in poses:
        mol.AddConformer(Chem.Conformer(pose.GetConformer()), assignId=True)
    matrix = pairwise_heavy_atom_rmsd(mol, align=False)
    return [round(float(v), 3) for v in matrix[np.triu_indices(len(poses), 1)]]


def posebusters(pose: Chem.Mol, crystal: Chem.Mol, receptor_pdb: str) -> tuple[bool, list[str]]:
    """PoseBusters 'redock' checks of pose: (all pass except the RMSD check, failing checks)."""
    from posebusters import PoseBusters

    with tempfile.NamedTemporaryFile("w", suffix=".pdb", delete=False) as f:
        f.write(receptor_pdb)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row = PoseBusters("redock").bust(Chem.Mol(pose), Chem.Mol(crystal), f.name).iloc[0]
    finally:
        os.unlink(f.name)
    failed = [str(k) for k, v in row.items() if isinstance(v, (bool, np.bool_)) and not v
              and "rmsd" not in str(k).lower()]  # PoseBusters' RMSD ≤ 2 Å check
    return not failed, failed


def evaluate(complex_: Complex, method: str, seed: int, receptor: Receptor) -> dict:
    """Dock one complex with one method and measure the poses."""
    crystal = complex_.ligand
    out = {"set": complex_.set, "name": complex_.name, "method": method, "seed": seed,
           "heavy_atoms": crystal.GetNumHeavyAtoms(),
           "rotatable_bonds": Chem.rdMolDescriptors.CalcNumRotatableBonds(crystal)}
    wall = time.perf_counter()
    try:
        box = ligand_box(crystal)
        start_mol = start_conformer(crystal, seed)
        out["start_rmsd"] = rmsd_in_place(start_mol, crystal)
        poses, cpu_s, *extras = METHODS[method](complex_, receptor, start_mol, box, seed)
        out["cpu_s"] = float(cpu_s)
        for extra in extras:
            out.update(extra)
        out["num_poses"] = len(poses)
        if not poses:
            raise ValueError("no poses")
        rmsd = [rmsd_in_place(p, crystal) for p in poses]
        out.update(rmsd=[round(r, 4) for r in rmsd], top1=rmsd[0], top5=min(rmsd[:5]),
                   oracle=min(rmsd))
        if poses[0].HasProp("vina_score"):
            out["scores"] = [p.GetDoubleProp("vina_score") for p in poses]
        if len(poses) > 1:
            out["pair_rmsd"] = pose_distances(poses)
        if method == FIGURE_METHOD and len(_FIGURE) < FIGURE_PANELS:
            _FIGURE.append((f"{complex_.set}/{complex_.name}", rmsd[0], receptor, crystal, poses[0]))
        pb_start = time.perf_counter()
        out["pb_valid"], out["pb_failed"] = posebusters(poses[0], crystal, receptor.to_pdb())
        out["pb_wall_s"] = time.perf_counter() - pb_start
        if receptor.name in _PDBQT and _PDBQT[receptor.name][2]:
            out["preparation_warnings"] = _PDBQT[receptor.name][2]
    except Exception as exc:  # one failed complex must not stop a long run
        out["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        out["traceback"] = traceback.format_exc(limit=3)[-1000:]
    out["wall_s"] = time.perf_counter() - wall
    if receptor.dropped:
        out["receptor_dropped"] = receptor.dropped
    return out


# --------------------------------------------------------------------------- statistics

def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p for b and c discordant pairs (binomial, p = 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def compare(records: dict[str, dict], set_: str, a: str, b: str, key: str = "top1") -> dict:
    """Paired comparison of methods a and b on the complexes of set_ both have done:
    wins (a < 2 Å, b not), losses (b < 2 Å, a not), both, neither, exact McNemar p, and the
    median RMSD difference a − b where both have one.  A failed complex is not a success."""
    ra = {r["name"]: r for r in records.values() if r["set"] == set_ and r["method"] == a}
    rb = {r["name"]: r for r in records.values() if r["set"] == set_ and r["method"] == b}
    common = sorted(set(ra) & set(rb))
    ok = lambda r: r.get(key, math.inf) < SUCCESS  # noqa: E731
    wins = sum(ok(ra[n]) and not ok(rb[n]) for n in common)
    losses = sum(ok(rb[n]) and not ok(ra[n]) for n in common)
    both = sum(ok(ra[n]) and ok(rb[n]) for n in common)
    diffs = [ra[n][key] - rb[n][key] for n in common if key in ra[n] and key in rb[n]]
    return {"a": a, "b": b, "set": set_, "criterion": f"{key} RMSD < {SUCCESS} Å", "n": len(common),
            "wins": wins, "losses": losses, "both": both,
            "neither": len(common) - wins - losses - both, "mcnemar_p": mcnemar_exact(wins, losses),
            "median_rmsd_diff": float(np.median(diffs)) if diffs else None}


def summarise(rows: list[dict]) -> dict:
    """Success rates over all complexes attempted (failures count as misses)."""
    n = len(rows)
    done = [r for r in rows if "top1" in r]
    frac = lambda f: float(np.mean([bool(f(r)) for r in rows])) if n else None  # noqa: E731
    cpu = [r["cpu_s"] for r in rows if "cpu_s" in r]
    return {"n": n, "failed": n - len(done),
            "top1_success": frac(lambda r: r.get("top1", math.inf) < SUCCESS),
            "top5_success": frac(lambda r: r.get("top5", math.inf) < SUCCESS),
            "oracle_success": frac(lambda r: r.get("oracle", math.inf) < SUCCESS),
            "median_top1_rmsd": float(np.median([r["top1"] for r in done])) if done else None,
            "pb_valid": frac(lambda r: r.get("pb_valid")),
            "top1_success_and_pb_valid": frac(lambda r: r.get("top1", math.inf) < SUCCESS
                                              and r.get("pb_valid")),
            "mean_cpu_s": float(np.mean(cpu)) if cpu else None,
            "median_cpu_s": float(np.median(cpu)) if cpu else None,
            "pb_failed_counts": _count(c for r in done for c in r.get("pb_failed", ()))}


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------- output

def fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(summary: dict):
    print(f"\n{'set':10s}{'method':10s}{'n':>5s}{'fail':>5s}{'top1':>7s}{'top5':>7s}{'oracle':>7s}"
          f"{'medRMSD':>8s}{'PB':>7s}{'<2&PB':>7s}{'CPU-s':>8s}")
    for set_, methods in summary.items():
        for method, s in methods.items():
            print(f"{set_:10s}{method:10s}{s['n']:5d}{s['failed']:5d}{fmt(s['top1_success']):>7s}"
                  f"{fmt(s['top5_success']):>7s}{fmt(s['oracle_success']):>7s}"
                  f"{fmt(s['median_top1_rmsd'], '.2f'):>8s}{fmt(s['pb_valid']):>7s}"
                  f"{fmt(s['top1_success_and_pb_valid']):>7s}{fmt(s['mean_cpu_s'], '.1f'):>8s}")


def draw(path: Path, rows: dict[str, dict[str, list[dict]]]):
    """Cumulative fraction of complexes with top-1 RMSD ≤ x, one panel per set."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5 * len(rows), 3.5), layout="constrained")
    axes = fig.subplots(1, len(rows), squeeze=False)[0]
    grid = np.linspace(0, 10, 201)
    for ax, (set_, methods) in zip(axes, rows.items()):
        for method, rs in methods.items():
            rmsd = np.array([r.get("top1", np.inf) for r in rs])
            ax.plot(grid, [(rmsd <= x).mean() for x in grid], label=f"{method} (n={len(rs)})")
        ax.axvline(SUCCESS, color="grey", lw=0.8, ls="--")
        ax.set(xlabel="top-1 RMSD (Å)", ylabel="fraction of complexes", title=set_, ylim=(0, 1))
        ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=80)


FIGURE_METHOD, FIGURE_PANELS = "molgen", 4
_FIGURE: list = []  # (label, top-1 RMSD, receptor, crystal, top-1 pose) of the first complexes


def draw_poses(path: Path):
    """The crystal ligand (green) and molgen's top-1 pose (orange) among the pocket's atoms
    within 6 Å of the crystal ligand (grey), for the first complexes docked in this run."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4 * len(_FIGURE), 4), layout="constrained")
    for k, (label, rmsd, receptor, crystal, pose) in enumerate(_FIGURE):
        ax = fig.add_subplot(1, len(_FIGURE), k + 1, projection="3d")
        heavy = Chem.RemoveAllHs(crystal).GetConformer().GetPositions()
        pocket = receptor.near(heavy, 6.0).pos
        ax.scatter(*pocket.T, s=6, c="0.7", depthshade=False)
        for mol, colour, name in ((crystal, "tab:green", "crystal"), (pose, "tab:orange", "molgen top-1")):
            xyz = mol.GetConformer().GetPositions()
            for b in mol.GetBonds():
                i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
                if mol.GetAtomWithIdx(i).GetAtomicNum() > 1 and mol.GetAtomWithIdx(j).GetAtomicNum() > 1:
                    ax.plot(*xyz[[i, j]].T, color=colour, lw=2)
            ax.plot([], [], color=colour, label=name)
        ax.set_title(f"{label}: {rmsd:.2f} Å", fontsize=9)
        ax.set_axis_off()
        if k == 0:
            ax.legend(fontsize=8, loc="upper left")
    fig.savefig(path, dpi=80)


def load_records(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text())["complexes"] if path.is_file() else {}


def save_records(path: Path, records: dict[str, dict]):
    """The per-complex file, written atomically, one record per line (with the candidates a
    record holds thousands of numbers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    description = "per-complex docking results of benchmarks/docking.py, keyed set/name/method"
    lines = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in records.items())
    tmp.write_text(f'{{"description": {json.dumps(description)},\n "complexes": {{\n{lines}\n }}\n}}\n')
    tmp.replace(path)


def part(set_: str, items: list[Complex], which: str, root) -> list[Complex]:
    """The complexes of `which` part ("all", "test", "valid"; see CASF_REPORTED) of a set."""
    if which == "all":
        return items
    if set_ == "astex":
        return items if which == "test" else []
    if which == "test":
        return items[:CASF_REPORTED]
    astex = load_complexes("astex", root)
    ids, skeletons = {c.pdb_id for c in astex}, {Chem.MolToInchiKey(c.ligand).split("-")[0] for c in astex}
    return [c for c in items[CASF_REPORTED:] if c.pdb_id not in ids
            and Chem.MolToInchiKey(c.ligand).split("-")[0] not in skeletons]


def subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Indices of a fixed-seed random subset of size limit (all when None), ascending."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    p.add_argument("--methods", nargs="+", default=["vina8"],
                   help=f"of {', '.join(METHODS)}; --report also takes the names of kept results "
                        "of methods since retired (e.g. molgen_first_stage)")
    p.add_argument("--limit", type=int, default=None,
                   help="a fixed-seed random subset of this many complexes per set (default all)")
    p.add_argument("--names", nargs="+", default=None, help="only these complexes (by name)")
    p.add_argument("--part", choices=("all", "test", "valid"), default="all",
                   help="CASF-2016's reported complexes (test) or its validation part, where "
                        "settings are chosen (valid); Astex is test only (default all)")
    p.add_argument("--seed", type=int, default=0, help="subset, start conformer and method seed")
    p.add_argument("--merge", action="store_true",
                   help="keep the per-complex results already in the complexes file and skip "
                        "those pairs (resume); without it the file starts afresh")
    p.add_argument("--include", type=Path, nargs="+", default=[], metavar="FILE",
                   help="per-complex files of other runs (e.g. a Vina run going on beside this "
                        "one) whose results are read in too; implies --merge")
    p.add_argument("--report", action="store_true",
                   help="run nothing: summarise the kept results, per set on the complexes that "
                        "every listed method run on that set has done (implies --merge)")
    p.add_argument("--data", type=Path, default=None, help="data root (default $MOLGEN_DATA)")
    p.add_argument("--checkpoint", default=None,
                   help="docking model of the molgen methods (default: the shipped model)")
    p.add_argument("--rescore", action="store_true",
                   help="molgen methods: rescore every candidate with Vina's 'vinardo' function (rescore())")
    p.add_argument("--save-poses", type=Path, default=None, metavar="DIR",
                   help="with --rescore: write every candidate pose to DIR/<set>_<name>.sdf.gz")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"summary JSON (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown and not args.report:
        p.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if args.save_poses is not None and not args.rescore:
        p.error("--save-poses writes the poses --rescore reads: give both")
    RDLogger.DisableLog("rdApp.*")
    _MODEL["path"] = args.checkpoint
    RESCORE.update(on=args.rescore, poses=args.save_poses)
    complexes_path = args.out.with_name(args.out.stem + "_complexes.json")
    records = load_records(complexes_path) if args.merge or args.include or args.report else {}
    for other in args.include:
        records.update({k: v for k, v in load_records(other).items() if k not in records})
    t_start, load_start = time.perf_counter(), os.getloadavg()

    selected: dict[str, list[Complex]] = {}
    for set_ in args.sets:
        items = part(set_, load_complexes(set_, args.data), args.part, args.data)
        if args.names:
            items = [c for c in items if c.name in args.names]
        selected[set_] = [items[i] for i in subset(len(items), args.limit, args.seed)]
        if args.report:  # the methods run on this set at all, on the complexes all of them did
            ran = [m for m in args.methods if any(f"{set_}/{c.name}/{m}" in records for c in selected[set_])]
            selected[set_] = [c for c in selected[set_] if all(f"{set_}/{c.name}/{m}" in records for m in ran)]
    todo = [(c, m) for cs in selected.values() for c in cs for m in args.methods
            if f"{c.set}/{c.name}/{m}" not in records and not args.report]
    if args.report:  # the results read in, as one file
        save_records(complexes_path, records)
    print(f"{sum(map(len, selected.values()))} complexes × {len(args.methods)} methods; "
          f"{len(todo)} to run, {len(records)} results kept", flush=True)
    receptor, receptor_of = None, None
    for i, (complex_, method) in enumerate(todo):
        if receptor_of is not complex_:
            try:
                receptor, receptor_of = read_receptor(complex_.receptor_path), complex_
            except Exception as exc:
                receptor, receptor_of = exc, complex_
        if isinstance(receptor, Exception):
            row = {"set": complex_.set, "name": complex_.name, "method": method,
                   "error": f"{type(receptor).__name__}: {receptor}"}
        else:
            row = evaluate(complex_, method, args.seed, receptor)
        records[f"{complex_.set}/{complex_.name}/{method}"] = row
        save_records(complexes_path, records)
        print(f"[{i + 1}/{len(todo)}] {complex_.set}/{complex_.name} {method}: "
              + (f"top1 {row['top1']:.2f} Å, oracle {row['oracle']:.2f} Å, "
                 f"score {row.get('scores', [math.nan])[0]:.2f}, PB {'ok' if row['pb_valid'] else row['pb_failed']}, "
                 f"{row['cpu_s']:.1f} CPU-s" if "top1" in row else f"FAILED {row['error']}"), flush=True)

    rows = {s: {m: rs for m in args.methods
                if (rs := [records[f"{s}/{c.name}/{m}"] for c in cs if f"{s}/{c.name}/{m}" in records])}
            for s, cs in selected.items()}
    summary = {s: {m: summarise(rs) for m, rs in ms.items()} for s, ms in rows.items()}
    comparisons = [compare(records, s, a, b) for s in selected for i, a in enumerate(args.methods)
                   for b in args.methods[i + 1:] if a in rows[s] and b in rows[s]]
    print_table(summary)
    for c in comparisons:
        print(f"{c['set']}: {c['a']} vs {c['b']} on {c['n']}: {c['wins']} wins, {c['losses']} "
              f"losses, McNemar p = {c['mcnemar_p']:.3g}")
    output = dict(
        description="Redocking: top-1/top-5/oracle RMSD success (< 2 Å), PoseBusters validity "
                    "and CPU cost per set and method (benchmarks/docking.py)",
        settings=dict(sets=args.sets, methods=args.methods, limit=args.limit, names=args.names, part=args.part,
                      seed=args.seed, threads=1, checkpoint=args.checkpoint,
                      report_only=args.report, complexes_per_set={s: len(cs) for s, cs in selected.items()}, success_rmsd=SUCCESS, overlap=list(OVERLAP),
                      box="ligand_box: crystal heavy-atom centroid, extent + 10 Å",
                      start="ETKDGv3 (molgen.conformers.api.embed) + MMFF94 of the crystal ligand",
                      complexes_file=str(complexes_path)),
        machine=dict(platform=platform.platform(), python=sys.version.split()[0],
                     cpu_count=os.cpu_count(), rdkit=rdkit.__version__, numpy=np.__version__,
                     loadavg_1_5_15min_start=list(load_start),
                     loadavg_1_5_15min_end=list(os.getloadavg())),
        summary=summary, comparisons=comparisons, total_runtime_s=time.perf_counter() - t_start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=1) + "\n")
    draw(args.out.with_suffix(".png"), rows)
    if _FIGURE:
        draw_poses(args.out.with_name(args.out.stem + "_poses.png"))
    print(f"\nwrote {args.out}, {complexes_path.name} and {args.out.with_suffix('.png').name}; "
          f"total runtime {output['total_runtime_s']:.1f}s")


if __name__ == "__main__":
    main()
