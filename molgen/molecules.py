"""3-D molecule generation on QM9 as a training task (EDM, Hoogeboom et al. 2022), and the
SDF and XYZ files its samples are written to.

The choices follow EDM unless said otherwise:
- a molecule's state is [n, 3 + 5 (+ 1)] (`MoleculeSpace.pack`): positions in Å, one-hot
  H, C, N, O, F scaled by 0.25 and, with `charges`, the atomic number scaled by 0.1 (EDM's
  `include_charges`, on by default for QM9: a redundant but smoother copy of the type);
- an EGNN on fully connected molecules predicts ε; the schedule, the ε-prediction and the
  optimizer are set by `experiment=qm9` (molgen/configs/experiment/qm9.yaml);
- training molecules are drawn uniformly *with replacement* from EDM's train split by the
  step's generator, not in epochs: a batch is then a pure function of (seed, step), which is
  what makes resume and DDP exact (molgen.training);
- a sample's atom count is drawn from the atom counts of the training split (or given); the
  histogram is kept in the checkpoint, so sampling needs neither the data nor qm9pack.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import MISSING
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import metrics
from .diffusion import Denoiser, SamplerConfig, sample
from .geometry import POS, MoleculeSpace, molecule_denoiser
from .qm9 import ATOM_SYMBOLS, QM9


@dataclass
class QM9Config:
    name: str = MISSING
    hidden: int = MISSING          # EGNN width
    layers: int = MISSING          # EGNN depth
    charges: bool = MISSING        # the atomic number as a feature too (EDM's include_charges)
    source: str = MISSING          # qm9pack | figshare (molgen.qm9.load_table)
    sample_batch: int = MISSING    # molecules per sampling batch: bounds the Σ n² edges in memory


class QM9Task:
    """EDM's unconditional QM9 model: an EGNN denoiser on `MoleculeSpace` batches."""

    Config = QM9Config
    samples_file = "samples.sdf"

    def __init__(self, cfg: QM9Config):
        if cfg.sample_batch < 1:
            raise ValueError(f"task.sample_batch must be >= 1, got {cfg.sample_batch}")
        self.cfg, self._data = cfg, None
        self.node_counts: Tensor | None = None  # [29 + 1] training molecules per atom count

    @property
    def data(self) -> QM9:
        """The train split, loaded on first use: sampling a checkpoint never needs it."""
        if self._data is None:
            self._data = QM9("train", source=self.cfg.source)
        return self._data

    @property
    def num_features(self) -> int:
        return len(ATOM_SYMBOLS) + int(self.cfg.charges)

    def build_model(self) -> nn.Module:
        from .egnn import EGNN  # torch-geometric takes seconds to import; toy runs skip it

        return EGNN(self.num_features, hidden=self.cfg.hidden, layers=self.cfg.layers)

    def batch(self, n: int, generator: torch.Generator) -> tuple[Tensor, MoleculeSpace]:
        mols = self.data.collate(torch.randint(len(self.data), (n,), generator=generator))
        space = MoleculeSpace.from_sizes(mols["n_atoms"])
        one_hot = nn.functional.one_hot(mols["atom_types"], len(ATOM_SYMBOLS))
        charges = mols["charges"] if self.cfg.charges else None
        return space.pack(mols["positions"], one_hot, charges), space

    def denoiser(self, net, schedule, prediction: str, space: MoleculeSpace) -> Denoiser:
        return molecule_denoiser(net, schedule, space, prediction)

    # -- what a checkpoint keeps -------------------------------------------------------------
    def counts(self) -> Tensor:
        """Training molecules per atom count, from the data unless a checkpoint gave them."""
        if self.node_counts is None:
            self.node_counts = torch.bincount(self.data.n_atoms)
        return self.node_counts

    def state_dict(self) -> dict:
        return {"node_counts": self.counts()}

    def load_state_dict(self, state: dict) -> None:
        self.node_counts = state["node_counts"].long()

    # -- sampling ----------------------------------------------------------------------------
    def atom_counts(self, n: int, seed: int, atoms: int | None = None) -> Tensor:
        """n atom counts: `atoms` each, or drawn from the training distribution."""
        if atoms is not None:
            if atoms < 1:
                raise ValueError(f"a molecule needs at least one atom, got atoms={atoms}")
            return torch.full((n,), atoms)
        g = torch.Generator().manual_seed(seed)
        return torch.multinomial(self.counts().double(), n, replacement=True, generator=g)

    def sample(self, denoiser_for, sampler: SamplerConfig, n: int, seed: int, device="cpu",
               progress: bool = False, atoms: int | None = None) -> list[tuple[Tensor, Tensor]]:
        """n molecules (positions [n_i, 3] in Å, atom types [n_i]) on the CPU, sampled on
        `device` in batches of cfg.sample_batch with denoiser_for(space of the batch)."""
        if n < 1:
            raise ValueError(f"the number of samples must be >= 1, got {n}")
        sizes = self.atom_counts(n, seed, atoms)
        on_device = torch.Generator(device).manual_seed(seed)
        molecules = []
        with tqdm(total=n, desc="sample", unit="mol", disable=not progress) as bar:
            for chunk in sizes.split(self.cfg.sample_batch):
                space = MoleculeSpace.from_sizes(chunk, device)
                shape = (int(chunk.sum()), POS + self.num_features)
                x = space.noise(torch.empty(shape, device=device), on_device)
                x = sample(denoiser_for(space), x, sampler, generator=on_device, progress=progress)
                pos, types, _ = MoleculeSpace.unpack(x.float().cpu(), len(ATOM_SYMBOLS))
                molecules += zip(pos.split(chunk.tolist()), types.split(chunk.tolist()))
                bar.update(len(chunk))
        return molecules

    def evaluate(self, denoiser_for, sampler: SamplerConfig, n: int, seed: int,
                 path: str | os.PathLike | None = None, device="cpu", progress: bool = False,
                 atoms: int | None = None) -> dict:
        """EDM's metrics of n samples (novelty left out: it needs every training SMILES);
        with `path`, the samples go to that SDF and to an XYZ file beside it."""
        molecules = self.sample(denoiser_for, sampler, n, seed, device, progress, atoms)
        if path is not None:
            write_sdf(path, molecules)
            write_xyz(Path(path).with_suffix(".xyz"), molecules)
        result = dataclasses.asdict(metrics.evaluate(molecules))
        return {key: value for key, value in result.items() if value is not None}


# -- files -------------------------------------------------------------------------------------

def write_sdf(path: str | os.PathLike, molecules) -> None:
    """One record per molecule, with the bonds EDM's distance rule perceives (molgen.metrics)
    and nothing sanitized or kekulized: invalid molecules are written as generated, so the
    file shows what the model made (RDKit reads them back with sanitize=False)."""
    from rdkit import Chem

    with Chem.SDWriter(str(path)) as writer:
        writer.SetKekulize(False)
        for i, (pos, types) in enumerate(molecules):
            mol = metrics.to_rdkit(types, metrics.bond_orders(pos, types))
            conformer = Chem.Conformer(len(types))
            for k, xyz in enumerate(pos.tolist()):
                conformer.SetAtomPosition(k, xyz)
            mol.AddConformer(conformer)
            mol.UpdatePropertyCache(strict=False)
            mol.SetProp("_Name", f"molgen sample {i}")
            writer.write(mol)


def write_xyz(path: str | os.PathLike, molecules) -> None:
    """The molecules as frames of one XYZ file (atom count, title, `symbol x y z` in Å)."""
    lines = []
    for i, (pos, types) in enumerate(molecules):
        lines += [str(len(types)), f"molgen sample {i}"]
        lines += [f"{ATOM_SYMBOLS[t]} {x:.5f} {y:.5f} {z:.5f}"
                  for t, (x, y, z) in zip(types.tolist(), pos.tolist())]
    Path(path).write_text("\n".join(lines) + "\n")
