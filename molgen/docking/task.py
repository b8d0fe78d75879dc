"""Training the pose model (`molgen train experiment=docking`).

Data: synthetic complexes cut from the PDownB protein chains (molgen.docking.synthetic): a
fragment of one to three residues is the ligand, the rest of the chain (its neighbouring
residues removed) the receptor — chains of the train split for training, of the validation
split for `evaluate`; no real protein–ligand complex is used, so CASF-2016 and Astex stay test
sets.  An example is a crystal pose on one of the ligand's local structures (its own, or an
ETKDG one with the crystal torsions set) in a box whose centre is the ligand's centroid
jittered by `box_noise` Å (users' boxes are not centred on the answer), with the receptor
atoms within POCKET_RADIUS of that centre as the pocket.  Its condition is 1 (pocket present),
replaced by 0 (dropped: the ligand-only pose prior) with probability `cond_drop`, for
classifier-free guidance.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import MISSING

from ..diffusion import SamplerConfig, drop_condition
from ..train.task import Batch, GraphTask

@dataclass
class DockingTaskConfig:
    name: str = MISSING
    hidden: int = MISSING        # DockingNet width
    layers: int = MISSING        # message-passing layers (ligand and pocket)
    rbf: int = MISSING           # Gaussians encoding each distance
    cutoff: float = MISSING      # Å: ligand heavy atoms closer than this exchange messages
    contact: float = MISSING     # Å: pocket atoms closer than this message ligand atoms
    forces: int = MISSING        # learned force channels of the rigid-motion output
    max_atoms: int = MISSING     # largest ligand (atoms with H) the model accepts
    per_chain: int = MISSING     # synthetic complexes cut from each chain
    max_chains: int = MISSING    # chains used per split (0: all)
    etkdg: int = MISSING         # ETKDG local structures per training ligand, crystal torsions set
    box_noise: float = MISSING   # Å: std of the box centre's offset from the ligand centroid
    cond_drop: float = 0.1       # p of the dropped pocket in training (classifier-free guidance)
    eval_k: int = MISSING        # poses per validation complex in `evaluate`
    sample_batch: int = MISSING  # poses per sampling batch


class DockingTask(GraphTask):
    """Pose diffusion (molgen.docking.pose, molgen.docking.model) on synthetic complexes;
    `evaluate` docks validation complexes and reports RMSD to their crystal poses."""

    Config = DockingTaskConfig
    samples_file = "poses.sdf"
    options = ()

    def __init__(self, cfg: DockingTaskConfig):
        for key in ("hidden", "layers", "rbf", "forces", "max_atoms", "per_chain", "eval_k", "sample_batch"):
            if getattr(cfg, key) < 1:
                raise ValueError(f"task.{key} must be >= 1, got {getattr(cfg, key)}")
        if not 0 <= cfg.cond_drop <= 1 or cfg.box_noise < 0 or cfg.etkdg < 0 or cfg.max_chains < 0:
            raise ValueError("task.cond_drop must be in [0, 1] and box_noise, etkdg, max_chains >= 0")
        self.cfg = cfg
        self._complexes = {}

    def complexes(self, split: str):
        """The split's synthetic complexes as `CrystalComplex`es, built on first use."""
        if split not in self._complexes:
            from ..conformers.inputs import ConformerInputError, to_molecule
            from .data import POCKET_RADIUS, CrystalComplex
            from .synthetic import synthetic_complexes

            out = []
            for c in synthetic_complexes(split, per_chain=self.cfg.per_chain, seed=0,
                                         max_chains=self.cfg.max_chains or None):
                try:
                    to_molecule(c.ligand, max_atoms=self.cfg.max_atoms)
                except ConformerInputError:
                    continue
                out.append(CrystalComplex.of(c.name, c.receptor, c.ligand, etkdg=self.cfg.etkdg,
                                             seed=0, reach=POCKET_RADIUS + 3 * self.cfg.box_noise))
            if not out:
                raise ValueError(f"no synthetic {split} complexes (check MOLGEN_DATA)")
            self._complexes[split] = out
        return self._complexes[split]

    def build_model(self):
        from .model import DockingNet

        c = self.cfg
        return DockingNet(c.hidden, c.layers, rbf_size=c.rbf, cutoff=c.cutoff, contact=c.contact,
                          forces=c.forces)

    def batch(self, n: int, generator: torch.Generator) -> Batch:
        from .model import NULL_CONDITION
        from .pose import Docking, PoseSpace

        train = self.complexes("train")
        picks = torch.randint(len(train), (n,), generator=generator).tolist()
        choice = torch.rand(n, generator=generator)
        jitter = torch.randn((n, 3), generator=generator) * self.cfg.box_noise
        dockings, crystal = [], []
        for c, u, dx in zip((train[i] for i in picks), choice, jitter):
            centre = c.centroid() + dx
            structure = c.structures[int(u * len(c.structures))]
            dockings.append(Docking(structure, c.pocket(centre), centre))
            crystal.append(c.crystal)
        space = PoseSpace(dockings)
        cond = drop_condition(torch.ones((n, 1)), NULL_CONDITION, self.cfg.cond_drop, generator)
        return Batch(space.state_of(torch.cat(crystal)), space, cond)

    def evaluate(self, denoiser_for, sampler: SamplerConfig, n: int, *, seed: int,
                 path: str | os.PathLike | None = None, device="cpu", progress: bool = False) -> dict:
        """Dock n validation complexes, eval_k poses each, from ETKDG local structures in a
        box centred on the crystal ligand (as the benchmarks place it); the fraction whose best
        pose (oracle) and whose first pose lie within 2 Å heavy-atom RMSD of the crystal (in
        place, symmetry-aware), and the median RMSD of all poses.  Poses go to the SDF at path."""
        from .api import DockingModel, dock_prepared

        k, complexes = self.cfg.eval_k, self.complexes("valid")[:n]
        model = DockingModel(denoiser_for, sampler, self.cfg.max_atoms)
        rmsd = []
        writer = None
        if path is not None:
            from rdkit import Chem

            writer = Chem.SDWriter(str(path))
        for c in complexes:
            poses = dock_prepared(c.ligand, c.pocket(c.centroid()), c.centroid(), model=model,
                                  n=k, seed=seed, device=device)
            rmsd.append(pose_rmsd(poses, c.ligand))
            if writer is not None:
                for cid in range(poses.GetNumConformers()):
                    writer.write(poses, confId=cid)
        if writer is not None:
            writer.close()
        best = np.array([r.min() for r in rmsd])
        first = np.array([r[0] for r in rmsd])
        return {"complexes": len(rmsd), f"oracle_of_{k}_within_2A": float(np.mean(best < 2)),
                "first_within_2A": float(np.mean(first < 2)),
                "median_pose_rmsd": float(np.median(np.concatenate(rmsd)))}


def pose_rmsd(poses, reference) -> np.ndarray:
    """In-place symmetry-aware heavy-atom RMSD [n] of each conformer of poses to reference."""
    from ..conformers.rmsd import heavy_atom_rmsd

    return heavy_atom_rmsd(poses, reference, align=False)
