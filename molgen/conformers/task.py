"""Training the torsion model (`molgen train experiment=conformers`) on crystal ligands.

A training example is a crystal ligand's torsions (the state x_0, molgen.conformers.model)
on a local structure: the crystal's own, or one of `local_structures` ETKDG embeddings of
the ligand, as the model meets them when it generates; the network sees the ligand with its
torsions turned to the noisy angles.  Molecules without rotatable bonds teach nothing and are
left out.  A fixed 5% of the ligands (every 20th by InChIKey order) is held out to watch
training: `evaluate` samples conformers for them the way `generate_conformers` does and
reports the best-of-k heavy-atom RMSD to the crystal, beside ETKDGv3's with the same k.

With `condition: source` every training conformer carries where its torsions come from (a
crystal, or a force-field minimum of a MOSES molecule; molgen.conformers.model.SOURCES),
replaced by the null condition with probability `cond_drop`; the model then samples crystal
torsions, with classifier-free guidance at the sampler's guidance_scale.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from omegaconf import MISSING

from ..diffusion import SamplerConfig
from ..train.task import Batch, GraphTask

if TYPE_CHECKING:  # RDKit and torch-geometric load on first use: a toy run skips them
    from rdkit import Chem

    from .model import Conformer


@dataclass
class ConformerTaskConfig:
    name: str = MISSING
    hidden: int = MISSING        # TorsionNet width
    layers: int = MISSING        # message-passing layers
    rbf: int = MISSING           # Gaussians encoding each pair distance
    cutoff: float = MISSING      # Å: heavy atoms closer than this exchange messages
    max_atoms: int = MISSING     # largest molecule (atoms with H) the model accepts
    local_structures: int = MISSING  # ETKDG embeddings per training ligand, crystal torsions set
    # crystal ligand sets trained on (molgen.conformers.data.CRYSTAL_SETS); the default is
    # what models trained before this key existed saw
    crystal_sets: list[str] = field(default_factory=lambda: ["good_density"])
    # MOSES molecules with MMFF conformers added (0: none), and conformers per molecule; with
    # defaults, so that models trained before these keys existed still load
    force_field_molecules: int = 0
    force_field_conformers: int = 2
    eval_k: int = MISSING        # conformers per held-out molecule in `evaluate`
    sample_batch: int = MISSING  # conformers per sampling batch
    condition: str = ""          # "" (unconditional) or "source" (see the module docstring)
    cond_drop: float = 0.1       # p of the null condition in training (classifier-free guidance)


CONDITIONS = ("", "source")


class ConformerTask(GraphTask):
    """The torsion model (molgen.conformers.model) trained on crystal ligands (see the module
    docstring); `evaluate` samples held-out ligands, or conformers of given molecules."""

    Config = ConformerTaskConfig
    samples_file = "samples.sdf"
    options = ("molecules",)

    def __init__(self, cfg: ConformerTaskConfig):
        if cfg.condition not in CONDITIONS or not 0 <= cfg.cond_drop <= 1:
            raise ValueError(f"task.condition must be one of {CONDITIONS} and cond_drop in [0, 1], "
                             f"got {cfg.condition!r}, {cfg.cond_drop}")
        self.cfg = cfg
        self._ligands, self._train, self._sources = None, None, None

    def ligands(self) -> list[tuple[int, Conformer, Chem.Mol]]:
        """(rank in InChIKey order, crystal conformer, crystal Mol) of the crystal ligands
        with rotatable bonds; loaded on first use."""
        if self._ligands is None:
            from rdkit import Chem

            from .data import crystal_ligands
            from .model import Conformer

            mols = sorted(crystal_ligands(self.cfg.crystal_sets), key=Chem.MolToInchiKey)
            items = [(i, Conformer.of(m), m) for i, m in enumerate(mols)]
            self._ligands = [it for it in items if len(it[1].graph.torsions)]
        return self._ligands

    def held_out(self) -> list[tuple[Conformer, Chem.Mol]]:
        """Every 20th ligand: (crystal conformer, crystal Mol) pairs to evaluate on."""
        return [(c, m) for i, c, m in self.ligands() if not i % 20]

    def training_set(self) -> list[Conformer]:
        """The other ligands' crystal conformers, their torsions on ETKDG local structures too,
        and the force-field conformers of MOSES molecules if configured; built on first use,
        with each conformer's source (a row of SOURCES) in `_sources`."""
        if self._train is None:
            from .model import SOURCES, Conformer

            train = [c for i, c, m in self.ligands() if i % 20]
            train += [c for i, c, m in self.ligands() if i % 20 for c in self._embedded(c, m)]
            crystal = len(train)
            if self.cfg.force_field_molecules:
                from .data import force_field_conformers

                extra = [Conformer.of(m) for m in force_field_conformers(
                    self.cfg.force_field_molecules, self.cfg.force_field_conformers)]
                train += [c for c in extra if len(c.graph.torsions)]
            self._train = train
            self._sources = torch.tensor([SOURCES.index("crystal")] * crystal
                                         + [SOURCES.index("force_field")] * (len(train) - crystal))
        return self._train

    def _embedded(self, crystal, mol):
        """The crystal conformer's torsions set on ETKDG local structures of the ligand: the
        local structures the model meets when it generates (seeded by the ligand's size)."""
        from rdkit import Chem

        from .api import embed
        from .model import Conformer
        from .torsions import TorsionBatch

        torsions = crystal.graph.torsions
        angles = crystal.angles()
        out = []
        for pos in embed(Chem.Mol(mol), self.cfg.local_structures, seed=mol.GetNumAtoms()):
            pos = TorsionBatch([torsions], [0]).set(pos.float(), angles)
            out.append(Conformer(crystal.graph, pos))
        return out

    def build_model(self):
        from .model import SOURCES, TorsionNet

        return TorsionNet(self.cfg.hidden, self.cfg.layers, self.cfg.rbf, cutoff=self.cfg.cutoff,
                          conditions=len(SOURCES) if self.cfg.condition else 0)

    def batch(self, n: int, generator: torch.Generator) -> Batch:
        from ..diffusion import drop_condition
        from .model import NULL_SOURCE, SOURCES, ConformerSpace

        train = self.training_set()
        picks = torch.randint(len(train), (n,), generator=generator)
        space = ConformerSpace([train[i] for i in picks])
        cond = None
        if self.cfg.condition:
            cond = drop_condition(torch.eye(len(SOURCES))[self._sources[picks]], NULL_SOURCE,
                                  self.cfg.cond_drop, generator)
        return Batch(space.data(), space, cond)

    def evaluate(self, denoiser_for, sampler: SamplerConfig, n: int, *, seed: int,
                 path: str | os.PathLike | None = None, device="cpu", progress: bool = False,
                 molecules: str | None = None) -> dict:
        """Without `molecules`: best-of-k heavy-atom RMSD to the crystal for n held-out ligands
        (k = cfg.eval_k), for the model (on ETKDGv3 local structures, as generate_conformers
        samples) and for ETKDGv3 itself; the model's conformers go to the SDF at `path`.
        With `molecules` (a SMILES, or a .smi/.sdf file of them): n conformers of each,
        written to `path` as `molgen conformers` writes them."""
        if molecules is not None:
            return self._conformers_of(molecules, denoiser_for, sampler, n, seed=seed, path=path,
                                       progress=progress)
        from rdkit import Chem

        from .api import CLASH_STEPS, add_conformers, embed, sample_conformers
        from .model import Conformer
        from .rmsd import heavy_atom_rmsd

        k, held_out = self.cfg.eval_k, self.held_out()[:n]
        jobs, etkdg = [], []
        for conformer, crystal in held_out:
            mol = Chem.Mol(crystal)
            structures = embed(mol, k, seed)
            etkdg.append(structures)
            jobs += [Conformer(conformer.graph, structures[j % len(structures)].float())
                     for j in range(k)]
        with torch.no_grad():
            positions = sample_conformers(jobs, denoiser_for, sampler, seed=seed,
                                          batch_size=self.cfg.sample_batch, device=device,
                                          clash_steps=CLASH_STEPS, progress=progress,
                                          conditioned=bool(self.cfg.condition))
        best = {"model": [], "etkdg": []}
        writer = Chem.SDWriter(str(path)) if path is not None else None
        for m, ((_, crystal), structures) in enumerate(zip(held_out, etkdg)):
            for key, confs in (("model", positions[m * k:(m + 1) * k]), ("etkdg", structures)):
                mol = Chem.Mol(crystal)
                mol.RemoveAllConformers()
                add_conformers(mol, confs)
                best[key].append(float(heavy_atom_rmsd(mol, crystal).min()))
                if writer is not None and key == "model":
                    for cid in range(mol.GetNumConformers()):
                        writer.write(mol, confId=cid)
        if writer is not None:
            writer.close()
        return {f"{key}_best_of_{k}_rmsd_median": float(np.median(v)) for key, v in best.items()} | \
            {f"{key}_best_of_{k}_within_1A": float(np.mean(np.array(v) <= 1.0)) for key, v in best.items()}

    def _conformers_of(self, molecules: str, denoiser_for, sampler: SamplerConfig, n: int, *,
                       seed: int, path, progress: bool) -> dict:
        from .api import ConformerModel, write_conformers
        from .inputs import read_inputs

        if path is None:
            raise ValueError("conformers of given molecules need a file to be written to")
        entries = read_inputs(molecules)
        model = ConformerModel(denoiser_for, sampler, self.cfg.max_atoms,
                               conditioned=bool(self.cfg.condition))
        failed, written = write_conformers(entries, path, n, model=model, seed=seed,
                                           progress=progress)
        return {"molecules": len(entries), "failed": failed, "conformers": written}
