"""The documentation's figures, made from the repository and the shipped models (none is pasted).

    python docs/scripts/figures.py OUT_DIR      # every figure into OUT_DIR, ~10 s on one thread

- sampler_error_vs_nfe.png: the core sampler benchmark (benchmarks/results/core_samplers.json,
  written by benchmarks/core_samplers.py): sliced Wasserstein distance and weight error of each
  sampler against its measured NFE, with the noise floor of a perfect sampler;
- sampler_grid.png: samples of the exact model of the 'ring' mixture (molgen.data.toy), one row
  per sampler and one column per step count, drawn from the same x_T;
- conformer_ensemble.png: ten conformers from the shipped model of a Platinum crystal ligand,
  superposed on its crystal pose (needs $MOLGEN_DATA/conformers/; without it the ensemble alone).

The MkDocs hook (docs/scripts/hooks.py) calls `build` at every `mkdocs build` or `serve` and
keeps the figures in a cache keyed by this file, the package's source and weights and the
benchmark results, so that an unchanged checkout draws them once.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLER_RESULTS = ROOT / "benchmarks" / "results" / "core_samplers.json"
FIGURES = ("sampler_error_vs_nfe.png", "sampler_grid.png", "conformer_ensemble.png")
"""What `build` writes."""

GRID_SAMPLERS = ("ddpm", "ddim", "heun", "sde", "dpmpp_2m")
GRID_STEPS = (5, 10, 25)
GRID_POINTS = 2000
ENSEMBLE_SIZE = 10
PLATINUM_INDEX = 4
"""Which Platinum ligand the ensemble figure shows (the fifth in the file, 03U_3U2O_A: 27 heavy
atoms, 6 rotatable bonds)."""


def sampler_error_vs_nfe(path: Path, results: Path = SAMPLER_RESULTS) -> None:
    """Sliced W1 and weight error against measured NFE per sampler, log-log, floor dashed."""
    data = json.loads(results.read_text())
    rows: dict[str, list[dict]] = {}
    for row in data["grid"]:
        rows.setdefault(row["sampler"], []).append(row)
    floor = data["noise_floor"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "sw", "sliced Wasserstein-1"),
                           (axes[1], "weight_err", "max component-weight error")):
        for name, points in rows.items():
            points = sorted(points, key=lambda r: r["nfe"])
            style = "x--" if "Euler" in name and "PF-ODE" in name else "o-"  # = DDIM, drawn over it
            ax.plot([r["nfe"] for r in points], [r[key] for r in points], style, ms=3, label=name)
        for row, marker in zip(data["rk45"], ("*", "P")):
            ax.plot([row["nfe"]], [row[key]], marker, color="black", ms=9,
                    label=f"{row['sampler']} (adaptive)")
        ax.axhline(floor[key], color="gray", ls="--", lw=1, label="noise floor (perfect sampler)")
        ax.axhspan(floor[key] - floor[f"{key}_sd"], floor[key] + floor[f"{key}_sd"],
                   color="gray", alpha=0.15)
        ax.set(xscale="log", yscale="log", xlabel="network evaluations (NFE)", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    s = data["settings"]
    fig.suptitle(f"Exact ε-model of the '{s['mixture']}' mixture, {s['schedule']} schedule, "
                 f"T = {s['T']}, N = {s['n']}, mean of {len(s['seeds']['per_row'])} draws "
                 "(benchmarks/results/core_samplers.json)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sampler_grid(path: Path) -> None:
    """Samples of the exact model per sampler (rows) and step count (columns), same x_T."""
    import torch

    from molgen.data.toy import ExactEpsModel, mixture_2d
    from molgen.diffusion import Denoiser, SamplerConfig, make_schedule, sample
    from molgen.metrics.stats import sliced_wasserstein

    torch.set_num_threads(1)
    mixture, schedule = mixture_2d("ring"), make_schedule("linear")
    denoiser = Denoiser(ExactEpsModel(mixture, schedule), schedule, "eps")
    x_T = torch.randn(GRID_POINTS, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    reference = mixture.sample(GRID_POINTS, torch.Generator().manual_seed(1))
    fig, axes = plt.subplots(len(GRID_SAMPLERS), len(GRID_STEPS),
                             figsize=(2.3 * len(GRID_STEPS), 2.3 * len(GRID_SAMPLERS)))
    for i, kind in enumerate(GRID_SAMPLERS):
        for j, steps in enumerate(GRID_STEPS):
            x = sample(denoiser, x_T, SamplerConfig(kind, steps=steps),
                       generator=torch.Generator().manual_seed(2))
            sw = sliced_wasserstein(x, reference, generator=torch.Generator().manual_seed(3))
            ax = axes[i, j]
            ax.scatter(x[:, 0], x[:, 1], s=0.5, alpha=0.5)
            ax.set(xlim=(-3, 3), ylim=(-3, 3), xticks=[], yticks=[], aspect="equal")
            nfe = 2 * steps - 1 if kind == "heun" else steps
            ax.set_title(f"{kind}, {steps} steps ({nfe} NFE)\nsliced W1 {sw:.3f}", fontsize=8)
    fig.suptitle("The exact ε-model of the 'ring' mixture, linear schedule, one x_T for all",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def platinum_ligand():
    """A crystal ligand of the Platinum set (explicit H, crystal coordinates), or None when the
    set is not under $MOLGEN_DATA."""
    import gzip

    from rdkit import Chem, RDLogger

    from molgen.conformers.data import PLATINUM
    from molgen.data.paths import default_data_root

    path = default_data_root() / PLATINUM
    if not path.is_file():
        return None
    RDLogger.DisableLog("rdApp.*")  # the set's SD group lines are noisy
    try:
        with gzip.open(path) as handle:
            for i, mol in enumerate(Chem.ForwardSDMolSupplier(handle, removeHs=False)):
                if i == PLATINUM_INDEX:
                    return mol
    finally:
        RDLogger.EnableLog("rdApp.*")
    return None


def conformer_ensemble(path: Path) -> None:
    """The shipped model's conformers of a crystal ligand superposed on the crystal pose."""
    import numpy as np
    import torch
    from rdkit import Chem
    from rdkit.Chem import rdMolAlign

    from molgen.conformers import generate_conformers
    from molgen.conformers.rmsd import heavy_atom_rmsd

    torch.set_num_threads(1)
    crystal = platinum_ligand()
    source = crystal if crystal is not None else Chem.MolFromSmiles("CC(=O)Nc1ccc(OCCN(C)C)cc1C(=O)O")
    mol = generate_conformers(Chem.Mol(source), num_confs=ENSEMBLE_SIZE, seed=0)
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    ids = [c.GetId() for c in mol.GetConformers()]
    rmsd = None
    if crystal is not None:
        reference = Chem.AddHs(crystal, addCoords=True) if crystal.GetNumAtoms() != mol.GetNumAtoms() else crystal
        rmsd = heavy_atom_rmsd(mol, reference)
        for cid in ids:  # superpose on the crystal pose (same atom order: the input's)
            rdMolAlign.AlignMol(mol, reference, prbCid=cid, atomMap=[(k, k) for k in heavy])
    else:
        for cid in ids[1:]:
            rdMolAlign.AlignMol(mol, mol, prbCid=cid, refCid=ids[0], atomMap=[(k, k) for k in heavy])
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()
             if b.GetBeginAtom().GetAtomicNum() > 1 and b.GetEndAtom().GetAtomicNum() > 1]

    fig = plt.figure(figsize=(6, 5))
    ax = fig.add_subplot(projection="3d")
    best = int(np.argmin(rmsd)) if rmsd is not None else None
    for k, cid in enumerate(ids):
        xyz = mol.GetConformer(cid).GetPositions()
        colour, width = ("tab:orange", 2.0) if k == best else ("tab:blue", 0.7)
        for a, b in bonds:
            ax.plot(*xyz[[a, b]].T, color=colour, lw=width, alpha=0.9 if k == best else 0.45)
    if crystal is not None:
        xyz = reference.GetConformer().GetPositions()
        for a, b in bonds:
            ax.plot(*xyz[[a, b]].T, color="black", lw=3.0)
        title = (f"{crystal.GetProp('_Name')}: crystal pose (black), {ENSEMBLE_SIZE} molgen "
                 f"conformers (blue),\nbest of {ENSEMBLE_SIZE} (orange): heavy-atom RMSD "
                 f"{rmsd.min():.2f} Å (median of all {np.median(rmsd):.2f} Å)")
    else:
        title = f"{ENSEMBLE_SIZE} molgen conformers (crystal pose not found: set MOLGEN_DATA)"
    centre = mol.GetConformer(ids[0]).GetPositions()[heavy].mean(0)
    span = 7.0
    ax.set(xlim=(centre[0] - span, centre[0] + span), ylim=(centre[1] - span, centre[1] + span),
           zlim=(centre[2] - span, centre[2] + span))
    ax.set_axis_off()
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build(out_dir: str | Path) -> list[Path]:
    """Every figure of FIGURES into out_dir; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sampler_error_vs_nfe(out / "sampler_error_vs_nfe.png")
    sampler_grid(out / "sampler_grid.png")
    conformer_ensemble(out / "conformer_ensemble.png")
    return [out / name for name in FIGURES]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    for figure in build(sys.argv[1]):
        print(figure)
