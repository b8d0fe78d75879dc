"""Conformer generation: SMILES or RDKit molecules in, RDKit molecules with 3D conformers out
(`generate_conformers`; the shell's `molgen conformers`).

The names below load on first use: importing the package (for its training task,
molgen.conformers.task) should not pay for RDKit and torch-geometric.
"""
import importlib

_EXPORTS = {"generate_conformers": "api", "ConformerModel": "api", "ConformerInputError": "inputs"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
