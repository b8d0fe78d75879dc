"""Conformer generation against experimental and DFT structures: best-of-k RMSD, cost, quality.

For every reference molecule each method generates max(--k) conformers from the molecule's
isomeric SMILES (stereo assigned from the reference's 3D coordinates, hydrogens added); the
best-of-k heavy-atom RMSD to the reference uses the first k of them
(molgen.conformers.rmsd.heavy_atom_rmsd: symmetry-aware, after superposition).  Also
reported: seconds of generation per conformer per core, failures (no conformers or fewer
than k), and the sanity checks of molgen.conformers.quality on all the conformers made.

The torsion floor (`torsion_floor`, per molecule): the best-of-k that torsions alone can
reach, the reference's own torsions set on the ceil(k / 4) ETKDG local structures molgen
samples k conformers on; what a sampled best-of-k loses above it is the torsion model's.

Datasets:
  platinum  Platinum Diverse 2017_01 (dev part): 2,294 crystal ligand poses,
            $MOLGEN_DATA/conformers/platinum_diverse_2017_01_dev.sdf.gz, split once by a hash
            of the ligand's name into train / valid / test (60 / 20 / 20; --platinum-part,
            default test; valid and test leave out the 200 molecules that earlier defaults
            were chosen on)
  qm9       the EDM test split of QM9 (molgen.data.qm9), B3LYP geometries; bonds are perceived
            from the coordinates (rdDetermineBonds), molecules where that fails are skipped
Methods:
  etkdg                    RDKit ETKDGv3 (randomSeed = rdkit_seed(--seed); random starting
                           coordinates when nothing embeds, as molgen's local structures)
  etkdg_mmff               ETKDGv3, then MMFF94 minimisation (RDKit's default 200 steps)
  molgen:<sampler>:<steps>[:<start>[:<L>]][:<setting>=<value>...]
                           molgen.conformers.generate_conformers with that core sampler,
                           steps, start time (< 1: refine ETKDG's torsions) and L ETKDG
                           local structures per molecule (defaults: the model's); settings
                           are SamplerConfig's grid fields (spacing, t_min, rho, sigma_min,
                           sigma_max), the sampler's options (e.g. eta),
                           particle_guidance (its weight) or oversample (the pool
                           per conformer kept; see generate_conformers), e.g.
                           molgen:dpmpp_2m:10:spacing=logsnr:t_min=0.001

    python benchmarks/conformers.py --limit 20 --k 1 10 --methods etkdg etkdg_mmff
    python benchmarks/conformers.py --methods etkdg molgen:dpmpp_2m:10 molgen:ddim:20
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import rdkit
import torch
from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem, rdDetermineBonds
from tqdm import tqdm

from molgen.conformers.api import (CONFORMERS_PER_LOCAL_STRUCTURE, ConformerModel, add_conformers, embed,
                                   generate_conformers)
from molgen.conformers.data import PLATINUM, platinum_part
from molgen.conformers.featurize import molecule_graph
from molgen.conformers.quality import conformer_quality
from molgen.conformers.rmsd import heavy_atom_rmsd
from molgen.conformers.torsions import TorsionBatch, dihedrals
from molgen.data.checks import check_int, check_real
from molgen.data.qm9 import QM9
from molgen.data.paths import default_data_root
from molgen.diffusion import SamplerConfig

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "conformers.json"
THRESHOLDS = (0.5, 1.0, 2.0)  # Å, for the "% of molecules with best-of-k RMSD ≤" columns
QUALITY_KEYS = ("bonds_ok", "angles_ok", "clash_free", "stereo_ok")


# --------------------------------------------------------------------------- datasets

def subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Indices of a fixed-seed random subset of size ``limit`` (all when None), ascending."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def with_input(name: str, ref: Chem.Mol) -> dict:
    """A record: the reference and the generation input, its isomeric SMILES with the stereo
    of the reference's coordinates and explicit hydrogens."""
    Chem.ClearMolSubstanceGroups(ref)  # PDB-derived SD files tag every atom; RemoveHs would keep Hs
    Chem.AssignStereochemistryFrom3D(ref)
    smiles = Chem.MolToSmiles(Chem.RemoveHs(ref))
    return {"name": name, "smiles": smiles, "ref": ref, "input": Chem.AddHs(Chem.MolFromSmiles(smiles))}


LEGACY_CHOICES = (200, 1)
"""(limit, seed) of the Platinum subset that molgen's conformer defaults were chosen on before
the split: its molecules are left out of the valid and test parts."""


def load_platinum(limit: int | None, seed: int, part: str = "all") -> tuple[list[dict], dict]:
    """Platinum-dev's readable molecules of `part` (all, train, valid or test), then a
    fixed-seed subset of `limit` of them."""
    path = default_data_root() / PLATINUM
    with gzip.open(path) as f:
        refs = list(Chem.ForwardSDMolSupplier(f, removeHs=False))
    legacy = set(subset(len(refs), *LEGACY_CHOICES).tolist())
    parts = [None if m is None else platinum_part(m.GetProp("_Name")) for m in refs]
    pool = [i for i, p in enumerate(parts) if p is not None and
            (part == "all" or (p == part and (part == "train" or i not in legacy)))]
    records = [with_input(refs[pool[j]].GetProp("_Name"), refs[pool[j]])
               for j in subset(len(pool), limit, seed)]
    counts = {name: parts.count(name) for name in ("train", "valid", "test")}
    return records, {"path": str(path), "size": len(refs), "unreadable": sum(m is None for m in refs),
                     "part": part, "part_rule": "sha256(name) % 10: 0-5 train, 6-7 valid, 8-9 test; "
                     f"valid and test without the legacy choice subset (limit, seed) = {LEGACY_CHOICES}",
                     "part_sizes": counts, "pool": len(pool)}


def load_qm9(limit: int | None, seed: int) -> tuple[list[dict], dict]:
    """Bond orders from the DFT coordinates by extended Hückel connectivity
    (``useHueckel=True``): distance-based connectivity fails on ~6% of QM9's strained cages
    and agrees with Hückel wherever it succeeds."""
    data, table = QM9("test"), Chem.GetPeriodicTable()
    records, failed = [], []
    for i in subset(len(data), limit, seed):
        item = data[int(i)]
        lines = [f"{table.GetElementSymbol(int(z))} {x:.6f} {y:.6f} {w:.6f}"
                 for z, (x, y, w) in zip(item["charges"], item["positions"].tolist())]
        ref = Chem.MolFromXYZBlock(f"{len(lines)}\n\n" + "\n".join(lines))
        try:
            with quiet_c_stderr():
                rdDetermineBonds.DetermineBonds(ref, charge=0, useHueckel=True)
            Chem.SanitizeMol(ref)
        except ValueError:
            failed.append(item["index"])
            continue
        records.append(with_input(f"gdb_{item['index']}", ref))
    return records, {"split": "EDM test", "size": len(data), "bond_perception_failed": len(failed),
                     "bond_perception_failed_ids": failed}


@contextlib.contextmanager
def quiet_c_stderr():
    """Send file descriptor 2 to /dev/null: YAeHMOP warns about every O–H bond there."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


DATASETS = {"platinum": load_platinum, "qm9": load_qm9}


# --------------------------------------------------------------------------- methods

def etkdg(mol: Chem.Mol, k: int, seed: int, mmff: bool = False) -> Chem.Mol:
    """ETKDGv3 exactly as molgen embeds its local structures (molgen.conformers.api.embed:
    one thread, randomSeed rdkit_seed(seed), random starting coordinates if nothing embeds
    otherwise), optionally followed by MMFF94 minimisation (RDKit's default 200 steps)."""
    mol = Chem.Mol(mol)
    add_conformers(mol, embed(mol, k, seed, repair=False))
    if mmff and mol.GetNumConformers():
        AllChem.MMFFOptimizeMoleculeConfs(mol, numThreads=1)
    return mol


def make_method(spec: str, args):
    """``spec`` -> function(input mol, k) returning a Mol with conformers (None if failed)."""
    if spec in ("etkdg", "etkdg_mmff"):
        return lambda mol, k: etkdg(mol, k, args.seed, mmff=spec == "etkdg_mmff")
    kind, sampler, steps, *rest = spec.split(":") + [""] * (spec.count(":") < 2)
    settings = dict(field.split("=", 1) for field in rest if "=" in field)
    rest = [field for field in rest if "=" not in field]
    try:
        assert kind == "molgen" and sampler and len(rest) <= 2
        start, local = float(rest[0]) if rest else None, int(rest[1]) if len(rest) > 1 else None
        steps = int(steps)
    except (AssertionError, ValueError):
        raise SystemExit(f"unknown method {spec!r}: use etkdg, etkdg_mmff or "
                         f"molgen:<sampler>:<steps>[:<start>[:<L>]][:<setting>=<value>...]") from None
    model = ConformerModel.load(args.model)
    try:  # generate_conformers' own options; the other settings are the sampler's
        guidance = float(settings.pop("particle_guidance", 0))
        check_real("particle_guidance", guidance, 0)
        oversample = int(settings.pop("oversample", 1))
        check_int("oversample", oversample, 1)
    except ValueError as exc:
        raise SystemExit(f"{spec!r}: {exc}") from None
    if settings:  # the grid and options of the method's sampler
        try:
            spec = ":".join([sampler, str(steps), *(f"{k}={v}" for k, v in settings.items())])
            model = dataclasses.replace(model, sampler=SamplerConfig.from_spec(spec, model.sampler))
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
    run = lambda mol, k: generate_conformers(mol, num_confs=k, seed=args.seed, sampler=sampler,
                                             steps=steps, start=start, model=model,
                                             local_structures=local,
                                             particle_guidance=guidance, oversample=oversample)
    run(Chem.AddHs(Chem.MolFromSmiles("CCCCO")), 2)  # warm-up outside the timings
    return run


# --------------------------------------------------------------------------- evaluation

def local_structures_for(k: int) -> int:
    """The ETKDG local structures generate_conformers samples k conformers on, by default."""
    return -(-k // CONFORMERS_PER_LOCAL_STRUCTURE)


def torsion_floor(record: dict, ks: list[int], seed: int) -> dict:
    """RMSD of each of the local structures molgen embeds for max(ks) conformers, with the
    reference's torsions set on them.  Embedded in the reference's atom order, so not the
    very embeddings a run from the SMILES gets, but made the same way (api.embed, same seed)."""
    mol, ref = Chem.Mol(record["ref"]), record["ref"]
    torsions = molecule_graph(mol).torsions
    angles = dihedrals(torch.tensor(ref.GetConformer().GetPositions()), torsions.atoms)
    structures = embed(mol, local_structures_for(max(ks)), seed)
    add_conformers(mol, [TorsionBatch([torsions], [0]).set(pos, angles) for pos in structures])
    return {"name": record["name"], "rmsd": heavy_atom_rmsd(mol, ref).round(4).tolist()}


def floor_stats(floors: list[dict], ks: list[int]) -> list[dict]:
    """rmsd_stats of the floor for each k: the best of its first local_structures_for(k)."""
    return [rmsd_stats(floors, local_structures_for(k)) | {"k": k} for k in ks]


def above_floor(molecules: list[dict], floors: list[dict], ks: list[int]) -> list[dict]:
    """Per k, how far a method's best-of-k lies above the molecule's floor (Å): median, and
    % of molecules within 0.5 Å of it."""
    out = []
    for k in ks:
        local = local_structures_for(k)
        gaps = np.array([min(m["rmsd"][:k]) - min(f["rmsd"][:local]) for m, f in zip(molecules, floors)
                         if len(m.get("rmsd", ())) >= k and len(f["rmsd"]) >= local])
        out.append({"k": k, "n": len(gaps), "median_gap": float(np.median(gaps)) if len(gaps) else None,
                    "pct_within_0.5_of_floor": float(100 * (gaps <= 0.5).mean()) if len(gaps) else None})
    return out


def evaluate(record: dict, generate, ks: list[int], with_quality: bool) -> dict:
    """Generate for one molecule and measure: per-conformer RMSD, timing, quality."""
    start = time.perf_counter()
    try:
        mol = generate(record["input"], max(ks))
        error = None
    except ValueError as exc:  # molgen's ConformerInputError and RDKit's refusals
        mol, error = None, str(exc)
    seconds = time.perf_counter() - start
    out = {"name": record["name"], "heavy_atoms": record["ref"].GetNumHeavyAtoms(),
           "time_s": seconds, "num_conformers": 0 if mol is None else mol.GetNumConformers()}
    if out["num_conformers"]:
        try:
            out["rmsd"] = heavy_atom_rmsd(mol, record["ref"]).round(4).tolist()
        except ValueError as exc:  # a different molecule came back
            error = str(exc)
    if with_quality and "rmsd" in out:
        quality_start = time.perf_counter()
        out["quality"] = conformer_quality(mol, record["input"])
        out["quality_time_s"] = time.perf_counter() - quality_start
    if error:
        out["error"] = error
    return out


def rmsd_stats(molecules: list[dict], k: int) -> dict:
    """Best-of-k statistics; molecules with fewer than k conformers (or none, or no RMSD)
    are failures and count as missing."""
    best = np.array([min(m["rmsd"][:k]) for m in molecules if len(m.get("rmsd", ())) >= k])
    stats = {"k": k, "n": len(best), "failures": len(molecules) - len(best)}
    if len(best):
        stats.update(median=float(np.median(best)), mean=float(best.mean()),
                     **{f"pct_le_{t:g}": float(100 * (best <= t).mean()) for t in THRESHOLDS})
    return stats


def quality_stats(molecules: list[dict], baseline: list[dict] | None) -> dict:
    """Means over molecules of the quality fractions, % of molecules whose every conformer
    keeps the input's stereo, and the median over molecules of the relaxed MMFF energy
    difference to the baseline (etkdg) on the same molecule."""
    rows = [m["quality"] for m in molecules if "quality" in m]
    stats = {"n": len(rows)}
    for key in QUALITY_KEYS:
        values = [q[key] for q in rows if q[key] is not None]
        stats[key] = float(np.mean(values)) if values else None
    stats["stereo_all_confs_pct"] = float(100 * np.mean([q["stereo_ok"] == 1.0 for q in rows])) if rows else None
    stats["quality_time_s"] = float(sum(m["quality_time_s"] for m in molecules if "quality" in m))
    if baseline is not None:
        base = {m["name"]: m["quality"] for m in baseline if "quality" in m}
        for key in ("energy_median", "energy_min"):
            diffs = [m["quality"][key] - base[m["name"]][key] for m in molecules
                     if "quality" in m and m["name"] in base
                     and m["quality"][key] is not None and base[m["name"]][key] is not None]
            stats[f"delta_{key}_vs_etkdg"] = float(np.median(diffs)) if diffs else None
            stats[f"delta_{key}_n"] = len(diffs)
    return stats


def summarise(molecules: list[dict], ks: list[int]) -> dict:
    """Totals and RMSD statistics of one method; everything runs on one thread, so seconds
    are seconds per core."""
    made = sum(m["num_conformers"] for m in molecules)
    seconds = sum(m["time_s"] for m in molecules)
    return {"molecules": len(molecules), "conformers": made, "time_s": seconds,
            "s_per_conf_per_core": seconds / made if made else None,
            "s_per_mol_per_core": seconds / len(molecules) if molecules else None,
            "generation_failed": sum(m["num_conformers"] == 0 for m in molecules),
            "errors": sum("error" in m for m in molecules),
            "rmsd": [rmsd_stats(molecules, k) for k in ks]}


# --------------------------------------------------------------------------- output

def fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def print_tables(dataset: str, summaries: dict[str, dict], floor: list[dict]):
    width = max(len(m) for m in (*summaries, "torsion floor")) + 2
    print(f"\n== {dataset}: best-of-k heavy-atom RMSD (Å) to the reference")
    print(f"{'method':{width}s}{'k':>4s}{'n':>6s}{'fail':>6s}{'median':>8s}{'mean':>8s}"
          + "".join(f"{'≤' + format(t, 'g'):>7s}" for t in THRESHOLDS) + f"{'s/conf':>9s}{'s/mol':>8s}")
    for method, s in summaries.items():
        for r in s["rmsd"]:
            print(f"{method:{width}s}{r['k']:4d}{r['n']:6d}{r['failures']:6d}{fmt(r.get('median')):>8s}"
                  f"{fmt(r.get('mean')):>8s}"
                  + "".join(f"{fmt(r.get(f'pct_le_{t:g}'), '.1f'):>7s}" for t in THRESHOLDS)
                  + f"{fmt(s['s_per_conf_per_core'], '.4f'):>9s}{fmt(s['s_per_mol_per_core'], '.3f'):>8s}")
    for r in floor:
        print(f"{'torsion floor':{width}s}{r['k']:4d}{r['n']:6d}{r['failures']:6d}{fmt(r.get('median')):>8s}"
              f"{fmt(r.get('mean')):>8s}" + "".join(f"{fmt(r.get(f'pct_le_{t:g}'), '.1f'):>7s}" for t in THRESHOLDS))
    print(f"\n== {dataset}: best-of-k above the torsion floor (Å, median; % of molecules within 0.5 Å of it)")
    for method, s in summaries.items():
        print(f"{method:{width}s}" + "".join(f"   k={r['k']}: {fmt(r['median_gap'])} ({fmt(r['pct_within_0.5_of_floor'], '.0f')}%)"
                                             for r in s["above_floor"]))
    if not any("quality" in s for s in summaries.values()):
        return
    print(f"\n== {dataset}: conformer quality (all conformers; fractions are means over molecules)")
    print(f"{'method':{width}s}{'bonds_ok':>9s}{'angles_ok':>10s}{'clash_free':>11s}{'stereo_ok':>10s}"
          f"{'stereo_mol%':>12s}{'dE_med':>8s}{'dE_min':>8s}")
    for method, s in summaries.items():
        q = s["quality"]
        print(f"{method:{width}s}{fmt(q['bonds_ok']):>9s}{fmt(q['angles_ok']):>10s}"
              f"{fmt(q['clash_free']):>11s}{fmt(q['stereo_ok']):>10s}{fmt(q['stereo_all_confs_pct'], '.1f'):>12s}"
              f"{fmt(q.get('delta_energy_median_vs_etkdg'), '.2f'):>8s}"
              f"{fmt(q.get('delta_energy_min_vs_etkdg'), '.2f'):>8s}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--limit", type=int, default=None,
                   help="a fixed-seed random subset of this many molecules per dataset (default all)")
    p.add_argument("--k", type=int, nargs="+", default=[1, 10, 50],
                   help="best-of-k values; max(k) conformers are made once (default 1 10 50)")
    p.add_argument("--seed", type=int, default=0, help="subset, ETKDG and molgen seed (default 0)")
    p.add_argument("--platinum-part", default="test", choices=("all", "train", "valid", "test"),
                   help="the part of Platinum's fixed split (platinum_part): choices are made on "
                        "valid, results reported on test (default test)")
    p.add_argument("--methods", nargs="+", default=["etkdg", "etkdg_mmff"],
                   help="etkdg, etkdg_mmff, molgen:<sampler>:<steps>[:<start>[:<L>]] (default etkdg etkdg_mmff)")
    p.add_argument("--model", default=None, help="molgen checkpoint (default: the shipped model)")
    p.add_argument("--no-quality", action="store_true", help="skip the quality checks (faster)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON path (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    ks = sorted(set(args.k))
    torch.set_num_threads(1)  # per-core timings: RDKit runs on one thread too
    RDLogger.DisableLog("rdApp.*")
    load_start, t_start = os.getloadavg(), time.perf_counter()
    methods = {spec: make_method(spec, args) for spec in args.methods}

    results = {}
    for dataset in args.datasets:
        records, info = DATASETS[dataset](args.limit, args.seed, args.platinum_part) \
            if dataset == "platinum" else DATASETS[dataset](args.limit, args.seed)
        info["used"] = len(records)
        per_method = {spec: [] for spec in methods}
        for record in tqdm(records, desc=dataset, unit="mol"):
            for spec, generate in methods.items():  # side by side: machine load hits all alike
                per_method[spec].append(evaluate(record, generate, ks, not args.no_quality))
        summaries = {spec: summarise(mols, ks) for spec, mols in per_method.items()}
        floors = [torsion_floor(record, ks, args.seed) for record in records]
        for spec, mols in per_method.items():
            summaries[spec]["above_floor"] = above_floor(mols, floors, ks)
        if not args.no_quality:
            for spec, mols in per_method.items():
                summaries[spec]["quality"] = quality_stats(mols, per_method.get("etkdg"))
        floor = {"rmsd": floor_stats(floors, ks), "molecules": floors}
        print_tables(dataset, summaries, floor["rmsd"])
        results[dataset] = {"info": info, "summary": summaries, "torsion_floor": floor,
                            "molecules": per_method}

    output = dict(
        description="Best-of-k heavy-atom RMSD, cost and quality of generated conformers "
                    "(benchmarks/conformers.py)",
        settings=dict(datasets=args.datasets, limit=args.limit, seed=args.seed, k=ks,
                      platinum_part=args.platinum_part,
                      methods=args.methods, model=args.model, threads=1,
                      quality=not args.no_quality, rmsd_thresholds=THRESHOLDS),
        machine=dict(platform=platform.platform(), python=sys.version.split()[0],
                     cpu_count=os.cpu_count(), processor=platform.processor(),
                     torch=torch.__version__, rdkit=rdkit.__version__, numpy=np.__version__,
                     loadavg_1_5_15min_start=list(load_start), loadavg_1_5_15min_end=list(os.getloadavg())),
        results=results, total_runtime_s=time.perf_counter() - t_start,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=1) + "\n")
    print(f"\nwrote {args.out}; total runtime {output['total_runtime_s']:.1f}s")


if __name__ == "__main__":
    main()
