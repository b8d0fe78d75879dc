"""Protein backbone generation: Cα traces of chains of given lengths, as Bio.PDB structures
(`generate_backbones`; the shell's `molgen backbones`), from a model trained on PDownB chains
(`molgen train experiment=backbones`, molgen.proteins.task).

The names below load on first use: importing the package (for its training task) should not
pay for Bio.PDB and torch-geometric.
"""
import importlib

_EXPORTS = {"generate_backbones": "api", "BackboneModel": "api"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
