"""MkDocs hook (mkdocs.yml `hooks:`): adds to the site what is made, not written.

- figures/*.png: drawn by docs/scripts/figures.py from the repository (the core sampler
  benchmark's JSON, the exact toy model, the shipped conformer model), kept in
  $MOLGEN_CACHE/docs-figures/<key>, where the key hashes figures.py, the package's source and
  weights, the benchmark JSON and whether the Platinum set is there: an unchanged checkout
  draws them once (~10 s on one thread), and `mkdocs serve` does not redraw them per edit;
- results/**.png: the PNGs that the benchmark scripts wrote into benchmarks/results/, served
  as they are;
- api/*.md: the API reference, a page per package of API_PAGES listing every public module
  found in it (mkdocstrings renders each from its docstrings), so a new module is documented
  as soon as it exists.

Nothing generated is written into docs/ or committed.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _figures_module():
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import figures

    return figures


def _key(figures) -> str:
    """A hash of everything the figures are drawn from."""
    digest = hashlib.sha256()
    package = ROOT / "molgen"
    inputs = [HERE / "figures.py", figures.SAMPLER_RESULTS,
              *sorted(package.rglob("*.py")), *sorted(package.rglob("*.pt"))]
    for path in inputs:
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update(str(figures.platinum_ligand() is not None).encode())
    return digest.hexdigest()[:16]


def figures_dir() -> Path:
    """The cached figures of this checkout, drawn first if they are not there."""
    figures = _figures_module()
    from molgen.data.paths import default_cache_dir

    out = default_cache_dir() / "docs-figures" / _key(figures)
    if not all((out / name).is_file() for name in figures.FIGURES):
        part = out.with_name(f"{out.name}.{os.getpid()}.part")
        shutil.rmtree(part, ignore_errors=True)
        figures.build(part)
        shutil.rmtree(out, ignore_errors=True)
        part.rename(out)
    return out


API_PAGES = {
    "diffusion": ("The general diffusion core: it knows no network, data set or task. The names "
                  "that `molgen.diffusion` itself exports (`Denoiser`, `SamplerConfig`, `sample`, "
                  "`make_schedule`, …) are those of the modules below.",
                  ["schedules", "spaces", "process", "denoiser", "losses", "samplers", "ode",
                   "likelihood", "batched"]),
    "conformers": ("Conformer generation. `from molgen.conformers import generate_conformers, "
                   "ConformerModel, ConformerInputError` loads these names on first use.",
                   ["api", "inputs", "postprocess", "rmsd", "quality", "torsions", "featurize",
                    "model", "task", "data"]),
    "proteins": ("Protein backbone generation. `from molgen.proteins import generate_backbones, "
                 "BackboneModel` loads these names on first use.", ["api", "task"]),
    "docking": ("Docking. `from molgen.docking import dock, DockingModel, DockingInputError, "
                "read_receptor` loads these names on first use.",
                ["api", "receptor", "pose", "model", "scoring", "refine", "data", "synthetic",
                 "task", "complexes", "vina"]),
    "train": ("Training. The names that `molgen.train` itself exports (`Trainer`, `train`, "
              "`load_config`, `load_trained`, `export_model`, …) are those of the modules below.",
              ["config", "task", "trainer", "checkpoint", "ema", "distributed", "trained"]),
    "tasks": ("The training tasks of the toy, image and QM9 paths; the conformer, backbone and "
              "docking tasks live with their products (`molgen.conformers.task`, "
              "`molgen.proteins.task`, `molgen.docking.task`).", ["toy", "images", "qm9"]),
    "nn": ("Networks.", ["layers", "graphs", "egnn", "nequip", "unet", "backbone"]),
    "data": ("Data sets, read in place from `$MOLGEN_DATA` or from the PyPI packages that ship "
             "them.", ["paths", "toy", "qm9", "images", "proteins"]),
    "metrics": ("Measuring samples.", ["stats", "fid", "molecules", "regressor", "backbones"]),
    "plotting": ("PNG figures of runs and the demo.", None),
    "cli": ("The `molgen` command; [Command line](../cli.md) says how to use it.", None),
}
"""Package (or single module) → (introduction, its modules in reading order; modules not
listed follow in alphabetical order)."""


def api_page(name: str) -> str:
    """The Markdown of one API reference page: mkdocstrings' `:::` per public module."""
    intro, order = API_PAGES[name]
    if order is None:
        modules = [f"molgen.{name}"]
    else:
        found = sorted(p.stem for p in (ROOT / "molgen" / name).glob("*.py")
                       if not p.stem.startswith("_"))
        ranked = [m for m in order if m in found] + [m for m in found if m not in order]
        modules = [f"molgen.{name}.{m}" for m in ranked]
    return "\n\n".join([f"# molgen.{name}", intro, *(f"::: {m}" for m in modules)]) + "\n"


def on_files(files: Files, config) -> Files:
    for name in API_PAGES:
        files.append(File.generated(config, f"api/{name}.md", content=api_page(name)))
    figures = _figures_module()
    out = figures_dir()
    for name in figures.FIGURES:
        files.append(File.generated(config, f"figures/{name}", abs_src_path=str(out / name)))
    for path in sorted(RESULTS.rglob("*.png")):
        files.append(File.generated(config, f"results/{path.relative_to(RESULTS).as_posix()}",
                                    abs_src_path=str(path)))
    return files
