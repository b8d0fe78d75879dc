"""Molecules in for conformer generation: SMILES, RDKit molecules, .smi and .sdf(.gz) files.

Every molecule goes through `to_molecule`, which makes what the model expects (sanitized,
explicit H, no conformers, supported elements) and keeps the input's stereo tags exactly:
unspecified centres stay unspecified.  Problems are `ConformerInputError`s with a one-line
message that names the molecule.
"""
from __future__ import annotations

import gzip
import itertools
from collections.abc import Iterator
from pathlib import Path

from rdkit import Chem, rdBase

from .featurize import ELEMENTS

SMILES_SUFFIXES = (".smi", ".smiles", ".txt")
SDF_SUFFIXES = (".sdf", ".sdf.gz")


class ConformerInputError(ValueError):
    """A molecule (or input file) the conformer model cannot take; the message is one line."""


def to_molecule(x: str | Chem.Mol, *, max_atoms: int | None = None,
                name: str | None = None) -> Chem.Mol:
    """A sanitized copy of `x` (SMILES or Mol) with explicit H and no conformers.

    A Mol without stereo tags but with a 3-D conformer gets its stereo from that conformer
    first.  The result's `_Name` is `name`, else the Mol's own, else the SMILES; errors name
    the molecule by it, with any control character (a newline in an SDF title) shown as '?',
    so that it cannot break a line of output.  `max_atoms` bounds the atom count with hydrogens.
    """
    if isinstance(x, str):
        if not x.isprintable():  # RDKit would read 'CCO\nCCC' as CCO titled 'CCC'
            raise ConformerInputError(f"invalid SMILES {x!r}: it holds a line break or other "
                                      "control character")
        name = name or x
        with rdBase.BlockLogs():
            mol = Chem.MolFromSmiles(x)
        if mol is None:
            raise ConformerInputError(f"invalid SMILES {x!r}")
    elif isinstance(x, Chem.Mol):
        mol = Chem.Mol(x)
        name = name or (mol.GetProp("_Name") if mol.HasProp("_Name") else None)
        try:
            with rdBase.BlockLogs():
                Chem.SanitizeMol(mol)
        except ValueError as exc:  # RDKit's MolSanitizeException (valence, kekulization)
            raise ConformerInputError(f"cannot sanitize {name or 'molecule'!r}: {exc}") from None
        conformer = next(iter(mol.GetConformers()), None)
        if conformer is not None and conformer.Is3D() and not _has_stereo_tags(mol):
            Chem.AssignStereochemistryFrom3D(mol, confId=conformer.GetId())
        mol.RemoveAllConformers()
        name = name or name_of(mol)
    elif x is None:
        raise ConformerInputError("no molecule (None: RDKit could not parse an input?)")
    else:
        raise TypeError(f"expected a SMILES string or an RDKit Mol, got {type(x).__name__}")

    if mol.GetNumAtoms() == 0:
        raise ConformerInputError(f"empty molecule {name!r}")
    unsupported = sorted({a.GetSymbol() for a in mol.GetAtoms()} - set(ELEMENTS))
    if unsupported:
        raise ConformerInputError(f"unsupported element(s) {', '.join(unsupported)} in "
                                  f"{name!r}: the model knows {', '.join(ELEMENTS)}")
    fragments = len(Chem.GetMolFrags(mol))
    if fragments > 1:  # their relative placement is arbitrary: atoms of two would overlap
        raise ConformerInputError(f"{name!r} has {fragments} disconnected fragments: give one "
                                  "molecule (strip salts and solvents first)")
    with rdBase.BlockLogs():  # RDKit parses some SMILES (an aromatic triple bond) it cannot write
        if Chem.MolFromMolBlock(Chem.MolToMolBlock(mol)) is None:
            raise ConformerInputError(f"{name!r}: RDKit would write it to an SDF that it cannot "
                                      "read back (kekulized, an atom exceeds its valence)")
    atoms = mol.GetNumAtoms()
    mol = Chem.AddHs(mol)
    if isinstance(x, Chem.Mol) and mol.GetNumAtoms() > atoms:  # a drawn SMILES implies its H
        mol.SetIntProp("molgen_added_hydrogens", mol.GetNumAtoms() - atoms)
    if max_atoms is not None and mol.GetNumAtoms() > max_atoms:
        raise ConformerInputError(f"{name!r} has {mol.GetNumAtoms()} atoms with hydrogens, "
                                  f"more than the model's limit of {max_atoms}")
    mol.SetProp("_Name", printable(name))
    return mol


def printable(text: str) -> str:
    """text with every control character (newline, escape, ...) replaced by '?'."""
    return "".join(c if c.isprintable() else "?" for c in text)


def name_of(mol: Chem.Mol) -> str:
    """The molecule's `_Name`, else its SMILES without hydrogens: how messages name it."""
    return (mol.GetProp("_Name") if mol.HasProp("_Name") else "") or \
        Chem.MolToSmiles(Chem.RemoveHs(mol))


def _has_stereo_tags(mol: Chem.Mol) -> bool:
    return (any(a.GetChiralTag() != Chem.ChiralType.CHI_UNSPECIFIED for a in mol.GetAtoms())
            or any(b.GetStereo() != Chem.BondStereo.STEREONONE for b in mol.GetBonds()))


def read_inputs(source: str) -> list[tuple[str, Chem.Mol | ConformerInputError]]:
    """(name, molecule or its error) for each molecule of a .smi/.smiles/.txt or .sdf(.gz)
    file, or for `source` itself as one SMILES when it names no such file.

    A bad molecule in a file is an error entry and the others are still read; a literal SMILES
    that fails, a missing file, or a file with no molecules raises `ConformerInputError`.
    """
    lower = source.lower()
    if not source.strip():
        raise ConformerInputError("empty input: give a SMILES or a "
                                  f"{', '.join(SMILES_SUFFIXES + SDF_SUFFIXES)} file")
    if Path(source).is_dir():
        raise ConformerInputError(f"{source} is a directory, not a SMILES or a "
                                  f"{', '.join(SMILES_SUFFIXES + SDF_SUFFIXES)} file")
    if not lower.endswith(SMILES_SUFFIXES + SDF_SUFFIXES):
        if Path(source).is_file():
            raise ConformerInputError(f"cannot read {source}: input files are "
                                      f"{', '.join(SMILES_SUFFIXES + SDF_SUFFIXES)}")
        mol = to_molecule(source)
        return [(mol.GetProp("_Name"), mol)]
    if not Path(source).is_file():
        raise ConformerInputError(f"no such file: {source}")
    records = _smiles_records(source) if lower.endswith(SMILES_SUFFIXES) else _sdf_records(source)
    try:
        entries = [(name, _checked(x, name)) for name, x in records]
    except (OSError, UnicodeDecodeError) as exc:  # not gzip, not text
        raise ConformerInputError(f"cannot read {source}: {exc}") from exc
    if not entries:
        raise ConformerInputError(f"no molecules in {source}")
    return entries


def _checked(x: str | Chem.Mol | ConformerInputError, name: str) -> Chem.Mol | ConformerInputError:
    """`to_molecule(x)`, or the error of a record that failed."""
    if isinstance(x, ConformerInputError):
        return x
    try:
        return to_molecule(x, name=name)
    except ConformerInputError as exc:
        return exc


def _smiles_records(path: str) -> Iterator[tuple[str, str]]:
    """(name, SMILES) per line `SMILES [name]`; blank lines and # comments are skipped."""
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            fields = line.split(maxsplit=1)
            if fields and not fields[0].startswith("#"):
                yield fields[-1].strip(), fields[0]


def _sdf_records(path: str) -> Iterator[tuple[str, Chem.Mol | ConformerInputError]]:
    """(title or `mol<i>`, unsanitized Mol) per record; a record RDKit cannot parse is an
    error entry.  Records are split at `$$$$` here so that a broken one keeps its title."""
    opener = gzip.open if path.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as lines:
        block, index = [], 0
        for line in itertools.chain(lines, ["$$$$"]):  # a last record may lack its `$$$$`
            if line.strip() != "$$$$":
                block.append(line)
                continue
            if "".join(block).strip():
                index += 1
                name = block[0].strip() or f"mol{index}"
                with rdBase.BlockLogs():
                    mol = Chem.MolFromMolBlock("".join(block), sanitize=False, removeHs=False)
                yield name, mol if mol is not None else ConformerInputError(
                    f"cannot parse SDF record {index} ({name!r}) of {path}")
            block = []
