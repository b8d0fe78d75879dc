"""Docking: ligand poses in a protein pocket (`dock`; the shell's `molgen dock`) from a pose
diffusion model (molgen.docking.pose, .model; `molgen train experiment=docking`), finished by
a Monte-Carlo search on a torch version of AutoDock Vina's scoring function (.scoring, .refine);
Vina itself side by side (.vina) and the evaluation sets (.complexes) for the benchmark.

The names below load on first use: importing the package (for its training task) should not
pay for RDKit and torch-geometric.
"""
import importlib

_EXPORTS = {"dock": "api", "DockingModel": "api", "DockingInputError": "receptor",
            "read_receptor": "receptor"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
