"""The judge of property-conditioned QM9 generation: an EGNN that predicts a property from a
molecule's 3-D structure (EDM's Table 3 protocol, Hoogeboom et al. 2022 §4.2; the predictor
of Satorras et al. 2021).

EDM splits QM9's train split in two halves: the regressor trains on the first (D_a), the
conditional generator on the second (D_b, molgen.tasks.qm9 with `task.condition`).  A
generated molecule is scored by |regressor(molecule) − the value it was asked for|; the mean
over samples is the MAE of Table 3.  The regressor sees positions and atom types only, is
invariant to rotations, reflections, translations and atom order, and predicts the property
normalized by its mean and mean absolute deviation (MAD) over D_a, trained with an L1 loss
as EDM's.

    model = train_regressor(RegressorConfig("alpha", steps=20000), "runs/regressor_alpha")
    model = PropertyRegressor.load("runs/regressor_alpha/regressor.pt")   # later
    values = model.predict(molecules)   # [(positions [n, 3], atom types [n]), ...]
    split_mae(model, "test")
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..nn.egnn import EquivariantConv
from ..diffusion.spaces import MoleculeSpace
from ..nn.graphs import graph_edges
from ..nn.layers import mlp
from ..data.qm9 import ATOM_SYMBOLS, PROPERTY_NAMES, QM9
from ..train import load_checkpoint, save_checkpoint, step_generator

REGRESSOR = "regressor.pt"
KEYS = ("step", "config", "model", "optimizer", "mean", "mad")


@dataclass
class RegressorConfig:
    property: str
    hidden: int = 128
    layers: int = 7          # EDM's property predictor: 7 layers × 128
    batch_size: int = 96
    lr: float = 1e-3         # cosine-annealed to 0 over `steps`
    steps: int = 20000
    seed: int = 0


class PropertyRegressor(nn.Module):
    """Invariant EGNN: one-hot atom types → EquivariantConv layers over the fully connected
    molecule (positions enter through distances only and are not updated) → per-atom MLP,
    summed per molecule → MLP → the normalized property."""

    def __init__(self, cfg: RegressorConfig, mean: float = 0.0, mad: float = 1.0):
        super().__init__()
        if cfg.property not in PROPERTY_NAMES:
            raise ValueError(f"unknown QM9 property {cfg.property!r}; use one of {', '.join(PROPERTY_NAMES)}")
        self.cfg, self.mean, self.mad = cfg, float(mean), float(mad)
        self.embed = nn.Linear(len(ATOM_SYMBOLS), cfg.hidden)
        self.convs = nn.ModuleList(EquivariantConv(cfg.hidden, 0, 1.0) for _ in range(cfg.layers))
        self.atom_mlp = mlp(cfg.hidden, cfg.hidden, cfg.hidden)
        self.readout = mlp(cfg.hidden, cfg.hidden, 1)

    def forward(self, pos: Tensor, types: Tensor, space: MoleculeSpace) -> Tensor:
        """Normalized predictions [B] for a batch: positions [N, 3], atom types [N]."""
        index = space.batch.to(pos.device)
        edges = graph_edges(pos, index, space.num_graphs)
        h = self.embed(nn.functional.one_hot(types, len(ATOM_SYMBOLS)).to(pos.dtype))
        no_attr = pos.new_zeros((edges.shape[1], 0))
        for conv in self.convs:
            h, _ = conv(h, pos, edges, no_attr)
        pooled = pos.new_zeros((space.num_graphs, h.shape[1])).index_add_(0, index, self.atom_mlp(h))
        return self.readout(pooled)[:, 0]

    @torch.no_grad()
    def predict(self, molecules: list[tuple[Tensor, Tensor]], batch_size: int = 500) -> Tensor:
        """The property (in EDM's units) of each molecule (positions [n, 3], atom types [n]),
        computed on the model's device, returned on the CPU."""
        device, out = self.embed.weight.device, []
        for start in range(0, len(molecules), batch_size):
            chunk = molecules[start:start + batch_size]
            space = MoleculeSpace.from_sizes([len(t) for _, t in chunk], device)
            pos = torch.cat([p for p, _ in chunk]).float().to(device)
            types = torch.cat([t for _, t in chunk]).to(device)
            out.append((self(pos, types, space) * self.mad + self.mean).cpu())
        return torch.cat(out)

    @classmethod
    def load(cls, path: str | Path, device="cpu") -> "PropertyRegressor":
        ckpt = load_checkpoint(path, KEYS)
        model = cls(RegressorConfig(**ckpt["config"]), float(ckpt["mean"]), float(ckpt["mad"]))
        model.load_state_dict(ckpt["model"])
        return model.to(device).eval()


def molecules_of(data: QM9, rows: Tensor) -> list[tuple[Tensor, Tensor]]:
    """(positions, atom types) of molecules `rows` of a split."""
    return [(data[i]["positions"], data[i]["atom_types"]) for i in rows.tolist()]


def train_regressor(cfg: RegressorConfig, out_dir: str | Path, *, progress: bool = True,
                    checkpoint_every: int = 1000, device="cpu") -> PropertyRegressor:
    """Train on the first half of the train split, resuming from out_dir/regressor.pt if it
    is there (a batch depends only on (seed, step), so a resumed run is the run)."""
    out_dir, column = Path(out_dir), PROPERTY_NAMES.index(cfg.property)
    data = QM9("train")
    rows = torch.arange(len(data) // 2)  # D_a; the conditional generator trains on the rest
    values = data.properties[rows, column]
    mean = float(values.mean())
    torch.manual_seed(cfg.seed)  # the initial weights
    model = PropertyRegressor(cfg, mean, float((values - mean).abs().mean())).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    path, step = out_dir / REGRESSOR, 0
    if path.is_file():
        ckpt = load_checkpoint(path, KEYS)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step = int(ckpt["step"])

    def save():
        save_checkpoint({"step": step, "config": asdict(cfg), "model": model.state_dict(),
                         "optimizer": optimizer.state_dict(), "mean": model.mean, "mad": model.mad}, path)

    model.train()
    for step in tqdm(range(step + 1, cfg.steps + 1), desc="regressor", disable=not progress):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / cfg.steps))
        picked = rows[torch.randint(len(rows), (cfg.batch_size,), generator=step_generator(cfg.seed, step))]
        mols = {k: v.to(device) for k, v in data.collate(picked).items()}
        predicted = model(mols["positions"], mols["atom_types"], MoleculeSpace.from_sizes(mols["n_atoms"], device))
        loss = (predicted - (mols["properties"][:, column] - model.mean) / model.mad).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % checkpoint_every == 0 or step == cfg.steps:
            save()
    return model.eval()


def split_mae(model: PropertyRegressor, split: str = "valid") -> float:
    """The regressor's MAE (EDM's units) on a QM9 split."""
    data = QM9(split)
    predicted = model.predict(molecules_of(data, torch.arange(len(data))))
    return float((predicted - data.properties[:, PROPERTY_NAMES.index(model.cfg.property)]).abs().mean())


def slope_at_fixed_size(predicted: Tensor, targets: Tensor, sizes: Tensor) -> float:
    """How far the judged property follows the requested one beyond what the atom count gives:
    the least-squares slope of `predicted` on `targets` with one intercept per atom count
    (both centred within each size).  1: the condition is met on average; 0: only the size
    carries the property (EDM's #atoms row).  MAE mixes this with the spread; this does not."""
    p, t = predicted.double(), targets.double()
    _, group = torch.unique(sizes, return_inverse=True)
    counts = torch.bincount(group).double()

    def centred(x: Tensor) -> Tensor:
        return x - (torch.zeros_like(counts).index_add_(0, group, x) / counts)[group]

    p, t = centred(p), centred(t)
    return float((p * t).sum() / (t * t).sum())
