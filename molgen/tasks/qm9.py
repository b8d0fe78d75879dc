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
  what makes resume and DDP exact (molgen.train);
- a sample's atom count is drawn from the atom counts of the training split (or given); the
  histogram is kept in the checkpoint, so sampling needs neither the data nor qm9pack;
- property-conditioned design (EDM §4.2, with classifier-free guidance on top): with
  `task.condition` a QM9 property (e.g. alpha), the model trains on the second half of EDM's
  train split (EDM's D_b; the first half, D_a, is left for the property regressor that judges
  the samples), and each molecule's condition is c = ((value − mean) / MAD, 1), replaced by the
  null condition (0, 0) with probability `cond_drop`; mean and MAD (mean absolute deviation)
  are EDM's normalization.  Unless targets are given, a sample's target is drawn from
  p(value | atom count) of the training molecules, kept in the checkpoint as EDM keeps its
  property histograms.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import MISSING
from torch import Tensor, nn

from ..metrics import molecules as metrics
from ..diffusion import Denoiser, SamplerConfig, drop_condition, sample_in_batches
from ..diffusion.spaces import POS, MoleculeSpace
from ..diffusion.denoiser import graph_denoiser
from ..data.qm9 import ATOM_SYMBOLS, PROPERTY_NAMES, QM9
from ..train.task import Batch


@dataclass
class QM9Config:
    name: str = MISSING
    hidden: int = MISSING          # EGNN width
    layers: int = MISSING          # EGNN or NequIP depth
    charges: bool = MISSING        # the atomic number as a feature too (EDM's include_charges)
    source: str = MISSING          # qm9pack | figshare (molgen.data.qm9.load_table)
    sample_batch: int = MISSING    # molecules per sampling batch: bounds the Σ n² edges in memory
    condition: str = ""            # "" (unconditional) or a QM9 property to condition on (PROPERTY_NAMES)
    cond_drop: float = 0.1         # p of the null condition in training (classifier-free guidance)
    model: str = "egnn"            # egnn (molgen.nn.egnn) | nequip (molgen.nn.nequip)
    irreps: str = "32x0e + 8x1o + 8x2e"  # NequIP's hidden irreps (model=nequip)


NULL_CONDITION = (0.0, 0.0)
"""The condition of 'no target': a real one is (normalized value, 1)."""
MODELS = ("egnn", "nequip")


class QM9Task:
    """EDM's QM9 model: an EGNN denoiser on `MoleculeSpace` batches, unconditional or
    conditioned on one property (see the module docstring)."""

    Config = QM9Config
    samples_file = "samples.sdf"
    options = ("atoms", "target")

    def __init__(self, cfg: QM9Config):
        if cfg.sample_batch < 1:
            raise ValueError(f"task.sample_batch must be >= 1, got {cfg.sample_batch}")
        if cfg.condition and cfg.condition not in PROPERTY_NAMES:
            raise ValueError(f"task.condition: unknown QM9 property {cfg.condition!r}; "
                             f"use one of {', '.join(PROPERTY_NAMES)} (or '' for none)")
        if not 0 <= cfg.cond_drop <= 1:
            raise ValueError(f"task.cond_drop must be in [0, 1], got {cfg.cond_drop}")
        if cfg.model not in MODELS:
            raise ValueError(f"task.model: unknown network {cfg.model!r}; choose one of "
                             f"{', '.join(MODELS)}")
        self.cfg, self._data, self._rows = cfg, None, None
        self.node_counts: Tensor | None = None  # [29 + 1] training molecules per atom count
        # conditional models: the training molecules' (atom count, value), and the value's mean and MAD
        self.targets: dict[str, Tensor] | None = None

    @property
    def data(self) -> QM9:
        """The train split, loaded on first use: sampling a checkpoint never needs it."""
        if self._data is None:
            self._data = QM9("train", source=self.cfg.source)
        return self._data

    @property
    def rows(self) -> Tensor:
        """The training molecules: all of the split, or its second half (EDM's D_b) for a
        conditional model."""
        if self._rows is None:
            n = len(self.data)
            self._rows = torch.arange(n // 2 if self.cfg.condition else 0, n)
        return self._rows

    @property
    def num_features(self) -> int:
        return len(ATOM_SYMBOLS) + int(self.cfg.charges)

    def build_model(self) -> nn.Module:
        # torch-geometric and e3nn take seconds to import; toy runs skip them
        cond_dim = len(NULL_CONDITION) if self.cfg.condition else 0
        if self.cfg.model == "nequip":
            from ..nn.nequip import NequIP

            return NequIP(self.num_features, irreps_hidden=self.cfg.irreps,
                          layers=self.cfg.layers, cond_dim=cond_dim)
        from ..nn.egnn import EGNN

        return EGNN(self.num_features, hidden=self.cfg.hidden, layers=self.cfg.layers,
                    cond_dim=cond_dim)

    def batch(self, n: int, generator: torch.Generator) -> Batch:
        mols = self.data.collate(self.rows[torch.randint(len(self.rows), (n,), generator=generator)])
        one_hot = nn.functional.one_hot(mols["atom_types"], len(ATOM_SYMBOLS))
        charges = mols["charges"] if self.cfg.charges else None
        space = MoleculeSpace.from_sizes(mols["n_atoms"])
        x0, cond = space.pack(mols["positions"], one_hot, charges), None
        if self.cfg.condition:
            values = mols["properties"][:, PROPERTY_NAMES.index(self.cfg.condition)]
            cond = drop_condition(self.encode(values), NULL_CONDITION, self.cfg.cond_drop, generator)
        return Batch(x0, space, cond)

    def denoiser(self, net, schedule, prediction: str, space: MoleculeSpace) -> Denoiser:
        return graph_denoiser(net, schedule, space, prediction)

    # -- conditions ----------------------------------------------------------------------------
    def property_targets(self) -> dict[str, Tensor]:
        """The training molecules' atom counts and values of the condition, with the values'
        mean and MAD; from the data unless a checkpoint gave them."""
        if self.targets is None:
            values = self.data.properties[self.rows, PROPERTY_NAMES.index(self.cfg.condition)]
            mean = values.mean()
            self.targets = {"n_atoms": self.data.n_atoms[self.rows], "values": values,
                            "mean": mean, "mad": (values - mean).abs().mean()}
        return self.targets

    def encode(self, values: Tensor) -> Tensor:
        """Conditions [B, 2] of property values [B]: (normalized value, 1)."""
        targets = self.property_targets()
        normalized = (values.float() - targets["mean"]) / targets["mad"]
        return torch.stack([normalized, torch.ones_like(normalized)], -1)

    def draw_targets(self, sizes: Tensor, seed: int) -> Tensor:
        """A target value per molecule, drawn from the values of training molecules with its
        atom count (p(value | n), as EDM samples its conditional model)."""
        targets, g = self.property_targets(), torch.Generator().manual_seed(seed + 1)
        out = torch.empty(len(sizes))
        for n in sizes.unique().tolist():
            pool = targets["values"][targets["n_atoms"] == n]
            if not len(pool):
                raise ValueError(f"no training molecule has {n} atoms to draw a target for")
            where = sizes == n
            out[where] = pool[torch.randint(len(pool), (int(where.sum()),), generator=g)]
        return out

    # -- what a checkpoint keeps -------------------------------------------------------------
    def counts(self) -> Tensor:
        """Training molecules per atom count, from the data unless a checkpoint gave them."""
        if self.node_counts is None:
            self.node_counts = torch.bincount(self.data.n_atoms)
        return self.node_counts

    def state_dict(self) -> dict:
        state = {"node_counts": self.counts()}
        if self.cfg.condition:
            state.update({f"targets_{k}": v for k, v in self.property_targets().items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        self.node_counts = state["node_counts"].long()
        if self.cfg.condition:
            self.targets = {k[len("targets_"):]: v for k, v in state.items() if k.startswith("targets_")}

    # -- sampling ----------------------------------------------------------------------------
    def atom_counts(self, n: int, seed: int, atoms: int | None = None) -> Tensor:
        """n atom counts: `atoms` each, or drawn from the training distribution."""
        if atoms is not None:
            if atoms < 1:
                raise ValueError(f"a molecule needs at least one atom, got atoms={atoms}")
            return torch.full((n,), atoms)
        g = torch.Generator().manual_seed(seed)
        return torch.multinomial(self.counts().double(), n, replacement=True, generator=g)

    def sample(self, denoiser_for, sampler: SamplerConfig, n: int, *, seed: int, device="cpu",
               progress: bool = False, atoms: int | None = None,
               targets: Tensor | None = None) -> list[tuple[Tensor, Tensor]]:
        """n molecules (positions [n_i, 3] in Å, atom types [n_i]) on the CPU, sampled on
        `device` in batches of cfg.sample_batch with denoiser_for(space of the batch).

        A conditional model aims molecule i at property value targets[i] (default: drawn by
        `draw_targets`; the draw for a seed is the same on every call)."""
        if n < 1:
            raise ValueError(f"the number of samples must be >= 1, got {n}")
        if (targets is not None or sampler.guidance_scale) and not self.cfg.condition:
            raise ValueError("a property target or guidance needs a conditional model "
                             "(this one was trained with task.condition='')")
        sizes = self.atom_counts(n, seed, atoms)
        cond = None
        if self.cfg.condition:
            targets = self.draw_targets(sizes, seed) if targets is None else torch.as_tensor(targets)
            if targets.shape != (n,):
                raise ValueError(f"need one target per molecule ({n}), got shape {tuple(targets.shape)}")
            cond = self.encode(targets)

        def layout(chunk: Tensor):
            return MoleculeSpace.from_sizes(chunk, device), (int(chunk.sum()), POS + self.num_features)

        def readout(space: MoleculeSpace, x: Tensor):
            return [MoleculeSpace.unpack(m, len(ATOM_SYMBOLS))[:2] for m in space.unbatch(x.float().cpu())]

        return sample_in_batches(denoiser_for, sizes, sampler, layout=layout,
                                 batch_size=self.cfg.sample_batch, seed=seed, cond=cond,
                                 null_cond=NULL_CONDITION, readout=readout, device=device,
                                 progress=progress, unit="mol")

    def evaluate(self, denoiser_for, sampler: SamplerConfig, n: int, *, seed: int,
                 path: str | os.PathLike | None = None, device="cpu", progress: bool = False,
                 atoms: int | None = None, target: float | None = None) -> dict:
        """EDM's metrics of n samples (novelty left out: it needs every training SMILES);
        with `path`, the samples go to that SDF and to an XYZ file beside it.  atoms: atoms
        per molecule (default: drawn from the training distribution); target: the property
        value every molecule of a conditional model aims at (default: drawn)."""
        targets = None if target is None else torch.full((n,), float(target))
        molecules = self.sample(denoiser_for, sampler, n, seed=seed, device=device,
                                progress=progress, atoms=atoms, targets=targets)
        if path is not None:
            write_sdf(path, molecules)
            write_xyz(Path(path).with_suffix(".xyz"), molecules)
        result = dataclasses.asdict(metrics.evaluate(molecules))
        return {key: value for key, value in result.items() if value is not None}


# -- files -------------------------------------------------------------------------------------

def write_sdf(path: str | os.PathLike, molecules) -> None:
    """One record per molecule, with the bonds EDM's distance rule perceives (molgen.metrics.molecules)
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
