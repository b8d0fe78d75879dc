"""The `molgen` command: demo, train, sample, conformers, backbones, dock (and --version).

Mistakes in what the user typed (arguments, config overrides, paths, unknown samplers) end
the command with one line `molgen: error: ...` and exit status 2; anything else is a bug and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from pathlib import Path

from . import __version__
from .diffusion import SAMPLERS, Denoiser, SamplerConfig, make_schedule
from .diffusion.grids import GRIDS
from .diffusion.schedules import SCHEDULES
from .proteins.motif import MOTIF_METHODS
from .proteins.sterics import CLASH_RADIUS, CLASH_WEIGHT

USER_ERRORS = (ValueError, OSError)


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as `molgen: error: ...` on one line (no usage dump)."""

    def error(self, message: str):
        self.exit(2, f"molgen: error: {message} (see `{self.prog} --help`)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as exc:
        print(f"molgen: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if "pip install" not in str(exc):  # molgen's own word on an optional package
            raise
        print(f"molgen: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        from .train import TrainingDiverged  # the trainer's own imports are deferred to `train`

        if not isinstance(exc, TrainingDiverged):
            raise
        print(f"molgen: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


@contextlib.contextmanager
def _notes():
    """molgen's own warnings (UserWarning: a molecule's strain, hetero groups left out) as
    one `molgen: note: ...` line each on stderr, as they come."""
    from tqdm.auto import tqdm

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserWarning):
            tqdm.write(f"molgen: note: {_one_line(message)}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        default, warnings.showwarning = warnings.showwarning, show
        yield


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or exc}: {exc.filename}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="molgen", description="Diffusion generative models for molecules "
                     "and proteins.  `molgen demo` shows the diffusion core without training.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo", help="sample a 2-D Gaussian mixture with its exact model (a few seconds)",
        description="Train-free sampling: the exact ε-model of a 2-D Gaussian mixture, driven "
                    "by a core sampler; writes the samples next to the data as a PNG and prints "
                    "their distance to the data.")
    demo.add_argument("-o", "--output", default="demo.png", help="PNG to write (default: %(default)s)")
    _add_sampling_args(demo, sampler="dpmpp_2m", steps=20, n=5000)
    demo.add_argument("--schedule", default="cosine", choices=sorted(SCHEDULES),
                      help="noise schedule (default: %(default)s)")
    demo.add_argument("--mixture", default="ring", choices=("ring", "three"),
                      help="which mixture (default: %(default)s)")
    demo.set_defaults(run=_demo)

    train = commands.add_parser(
        "train", help="train a model; hydra overrides such as steps=200 out_dir=/tmp/run",
        description="Train as configured by molgen/configs/train.yaml with hydra overrides "
                    "(KEY=VALUE, task=NAME).  Resumes from OUT_DIR/checkpoint.pt when it "
                    "exists (resume=false starts over).  Under torchrun each process is one "
                    "data-parallel rank.")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    train.add_argument("--show-config", action="store_true",
                       help="print the composed config and exit")
    train.set_defaults(run=_train)

    smp = commands.add_parser(
        "sample", help="sample a trained checkpoint (toy, images: a PNG; molecules: SDF and XYZ)",
        description="Sample a checkpoint written by `molgen train` with the sampler stored in "
                    "it, unless --sampler/--steps/--spacing override it, and print the samples' "
                    "metrics.  What is written follows the checkpoint's task: toy2d plots the "
                    "samples next to the data (PNG); images writes a PNG grid of the first 100 "
                    "images (a class per column for a class-conditional model); qm9 writes the "
                    "molecules to an SDF, with bonds perceived by EDM's distance rule, and an XYZ "
                    "file beside it; conformers writes conformers to an SDF; backbones writes "
                    "Cα traces to a multi-model PDB.  --atoms and --target are for qm9 "
                    "checkpoints, --class for images, --molecules for conformers, --length for "
                    "backbones.")
    smp.add_argument("--checkpoint", required=True, help="checkpoint.pt of a training run")
    smp.add_argument("-o", "--output", default=None,
                     help="file to write (default: the task's samples.png or samples.sdf)")
    _add_sampling_args(smp, sampler=None, steps=None, n=2000)
    smp.add_argument("--spacing", default=None, choices=GRIDS,
                     help="where the steps fall in time; logsnr: uniform in log SNR, shorter "
                          "first steps where it falls fast; karras: Karras et al.'s ρ = 7 "
                          "(default: the checkpoint's grid)")
    smp.add_argument("--t-min", type=float, default=None,
                     help="with --spacing logsnr or karras: the grid's smallest time before "
                          "the final denoising step (default: the schedule's first trained time)")
    smp.add_argument("--atoms", type=int, default=None,
                     help="molecules: atoms per molecule (default: drawn from the training "
                          "distribution stored in the checkpoint)")
    smp.add_argument("--target", type=float, default=None, metavar="VALUE",
                     help="property-conditioned molecules: the value every molecule aims at, in "
                          "EDM's units (default: drawn from the training molecules of its size)")
    smp.add_argument("--class", dest="label", type=int, default=None, metavar="K",
                     help="class-conditional images: draw class K only (default: every class "
                          "in turn)")
    smp.add_argument("--length", type=int, default=None, metavar="L",
                     help="backbone models: residues per chain (default: drawn from the training "
                          "chains' lengths)")
    _add_sse_args(smp)
    smp.add_argument("--molecules", default=None, metavar="INPUT",
                     help="conformer models: -n conformers of each molecule of INPUT (a SMILES "
                          "or a .smi/.sdf file), as `molgen conformers --checkpoint` makes them "
                          "(default: the held-out crystal ligands, best-of-k RMSD)")
    smp.add_argument("--guidance", type=float, default=None, metavar="W",
                     help="classifier-free guidance scale w, ε̃ = (1 + w) ε(x, c) - w ε(x, ∅) "
                          "(default: the checkpoint's, usually 0)")
    smp.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    smp.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                     help="where to sample (default: %(default)s)")
    smp.set_defaults(run=_sample)

    conf = commands.add_parser(
        "conformers", help="3-D conformers of molecules (a SMILES, .smi or .sdf) to an SDF",
        description="Generate -n conformers per molecule with the torsional diffusion model "
                    "(molgen.conformers) and write them to an SDF, one record per conformer: "
                    "the title is the molecule's name, the properties its conformer index and, "
                    "with --relax, its energy in kcal/mol.  A molecule that fails is reported "
                    "on stderr as `molgen: NAME: PROBLEM`, the others are still written, and "
                    "the exit status is then 1.")
    conf.add_argument("input", metavar="INPUT",
                      help="a SMILES, a .smi/.smiles/.txt file (`SMILES [name]` per line) or an "
                           ".sdf/.sdf.gz file")
    conf.add_argument("-o", "--output", default="conformers.sdf",
                      help="SDF to write (default: %(default)s)")
    _add_sampling_args(conf, sampler=None, steps=None, n=10)
    conf.add_argument("--relax", choices=("mmff", "uff"), default=None,
                      help="minimize each conformer with this force field (default: no)")
    conf.add_argument("--prune", type=float, default=None, metavar="RMSD",
                      help="drop conformers within RMSD Å (heavy atoms) of a kept one, lower "
                           "in energy when relaxed (default: keep all)")
    conf.add_argument("--oversample", type=int, default=1, metavar="M",
                      help="sample M times -n torsion sets and keep the -n that cover them "
                           "best (k-medoids on RMSD): more accurate best-of-n at about M times "
                           "the sampling time (default: %(default)s)")
    conf.add_argument("--checkpoint", default=None, metavar="PATH",
                      help="conformer model checkpoint (default: the shipped model)")
    conf.add_argument("--threads", type=int, default=None, metavar="N",
                      help="torch threads (default: torch's choice)")
    conf.set_defaults(run=_conformers)

    bb = commands.add_parser(
        "backbones", help="protein backbones (Cα traces) of given lengths to a PDB",
        description="Generate -n protein backbones (Cα traces) with the backbone diffusion model "
                    "(molgen.proteins) and write them to a multi-model PDB (MODEL 1 … n, chain A "
                    "of glycines holding their CA atoms), which PyMOL and ChimeraX open; prints "
                    "their geometry (molgen.metrics.backbones).")
    bb.add_argument("--length", type=int, nargs="+", default=None, metavar="L",
                    help="residues per chain: one value for every chain, or one per chain "
                         "(default: drawn from the training chains' lengths)")
    _add_sse_args(bb)
    bb.add_argument("--motif", default=None, metavar="FILE:SEGMENTS",
                    help="scaffold a motif: Cα atoms of residues of a PDB/mmCIF file, e.g. "
                         "rec.pdb:A10-25 or rec.pdb:A10-25,A40-44 (segments keep their spacing)")
    bb.add_argument("--motif-start", type=int, default=None, metavar="I",
                    help="residue (0-based) of the chain where the motif begins (default: centred)")
    bb.add_argument("--motif-method", choices=MOTIF_METHODS, default=None,
                    help="how the motif is held: guided (default: reconstruction guidance, then "
                         "replacement), condition (the model's motif condition only) or inpaint "
                         "(replacement only)")
    bb.add_argument("--guidance", type=float, default=None, metavar="W",
                    help="classifier-free guidance scale w toward --helix/--strand and the "
                         "motif, ε̃ = (1 + w) ε(x, c) - w ε(x, ∅) (default: the model's; 0 with --motif)")
    bb.add_argument("--clash-guidance", type=float, default=None, metavar="LAMBDA",
                    help="weight of the push that moves non-adjacent Cα atoms of each prediction "
                         f"apart to {CLASH_RADIUS:g} Å (molgen.proteins.sterics; default "
                         f"{CLASH_WEIGHT:g}, 0: none)")
    bb.add_argument("-o", "--output", default="backbones.pdb",
                    help="PDB to write (default: %(default)s)")
    _add_sampling_args(bb, sampler=None, steps=None, n=10)
    bb.add_argument("--checkpoint", default=None, metavar="PATH",
                    help="backbone model checkpoint (default: the shipped model)")
    bb.set_defaults(run=_backbones)

    dk = commands.add_parser(
        "dock", help="dock a ligand into a protein: ranked poses to an SDF",
        description="Dock a ligand (SMILES or the first molecule of an SDF; its stereo and "
                    "protonation are kept, hydrogens added if missing) into a receptor (PDB or "
                    "mmCIF: standard amino acids, common modified residues and metal ions; other "
                    "hetero groups are left out and named) with the pose diffusion model "
                    "(molgen.docking), and write the distinct ones of -n poses to an SDF, best "
                    "first (a pose within 1 Å RMSD of a better one is left out), with the SD "
                    "properties molgen_rank and molgen_box.  The box: --box-center and "
                    "--box-size, or --autobox-ligand (a reference ligand's extent + 10 Å).")
    dk.add_argument("--protein", required=True, metavar="PDB", help="receptor PDB or mmCIF file")
    dk.add_argument("--ligand", required=True, metavar="SMILES|SDF",
                    help="the ligand: a SMILES string or an .sdf file (its first molecule)")
    dk.add_argument("--box-center", type=float, nargs=3, default=None, metavar=("X", "Y", "Z"),
                    help="box centre (Å)")
    dk.add_argument("--box-size", type=float, nargs=3, default=None, metavar=("SX", "SY", "SZ"),
                    help="box edge lengths (Å)")
    dk.add_argument("--autobox-ligand", default=None, metavar="SDF",
                    help="a reference ligand whose box (extent + 10 Å) to dock into")
    dk.add_argument("--guidance", type=float, default=None, metavar="W",
                    help="classifier-free guidance scale w over the pocket, "
                         "ε̃ = (1 + w) ε(x, pocket) - w ε(x, ∅) (default: the model's)")
    dk.add_argument("--raw", action="store_true",
                    help="the learned model's poses as sampled: no search on Vina's "
                         "function, no ranking")
    dk.add_argument("--rounds", type=int, default=None, metavar="N",
                    help="Monte-Carlo rounds of the search on Vina's function from each sampled "
                         "pose, of 60 Adam steps each; 0: local optimisation only (default: 40)")
    dk.add_argument("-n", "--num-poses", type=int, default=None,
                    help="poses to sample (default: 60); the distinct ones are written")
    dk.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    dk.add_argument("-o", "--output", default="poses.sdf", help="SDF to write (default: %(default)s)")
    dk.add_argument("--checkpoint", default=None, metavar="PATH",
                    help="docking model checkpoint (default: the shipped model)")
    dk.set_defaults(run=_dock)
    return parser


def _add_sse_args(parser) -> None:
    for element, plural in (("helix", "helices"), ("strand", "strands")):
        parser.add_argument(f"--{element}", type=float, default=None, metavar="F",
                            help=f"secondary-structure-conditioned backbone models: fraction of "
                                 f"residues in {plural} to aim at (default: a training chain's, "
                                 f"scaled up as the model lands short: "
                                 f"molgen.proteins.task.TARGET_GAIN)")


def _add_sampling_args(parser, sampler, steps, n) -> None:
    stored = "the checkpoint's"
    parser.add_argument("--sampler", default=sampler, metavar="KIND",
                        help=f"one of {', '.join(sorted(SAMPLERS))} (default: {sampler or stored})")
    parser.add_argument("--steps", type=int, default=steps,
                        help=f"sampling steps (default: {steps or stored})")
    parser.add_argument("-n", "--num-samples", type=int, default=n,
                        help="number of samples (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")


def _demo(args) -> int:
    from .data.toy import ExactEpsModel, mixture_2d
    from .tasks.toy import evaluate_2d

    _check_output(args.output, (".png",), "a PNG image")
    start = time.perf_counter()
    sampler = SamplerConfig(kind=args.sampler, steps=args.steps)
    mixture, schedule = mixture_2d(args.mixture), make_schedule(args.schedule)
    denoiser = Denoiser(ExactEpsModel(mixture, schedule), schedule, "eps")
    metrics = evaluate_2d(denoiser, mixture, sampler, n=args.num_samples, seed=args.seed,
                          path=args.output)
    print(f"demo: {args.num_samples} samples of the {args.mixture!r} mixture from its exact "
          f"model, {args.sampler} {args.steps} steps ({args.schedule} schedule): "
          f"{_metrics(metrics)} -> {args.output} ({time.perf_counter() - start:.1f} s)")
    return 0


def _train(args) -> int:
    from omegaconf import OmegaConf

    from .train import load_config, train

    cfg = load_config(args.overrides)
    if args.show_config:
        print(OmegaConf.to_yaml(OmegaConf.structured(cfg)), end="")
        return 0
    metrics = train(cfg)
    if metrics:  # rank 0
        print(f"train: step {metrics['step']}, EMA samples ({cfg.sampler.kind} "
              f"{cfg.sampler.steps} steps): {_metrics(metrics)} -> {cfg.out_dir}")
    return 0


TASK_OPTIONS = {"atoms": "--atoms", "target": "--target", "label": "--class",
                "molecules": "--molecules", "length": "--length", "helix": "--helix",
                "strand": "--strand"}
"""The options of Task.evaluate that `molgen sample` sets, and their flags."""


def _check_output(path: str, suffixes: tuple[str, ...], kind: str) -> None:
    """Before any work: -o must name the format that is written, in a folder that exists
    (otherwise a run would end without its file, or with a PDB called .xyz)."""
    if not path.lower().endswith(suffixes):
        raise ValueError(f"-o {path}: the output is {kind}, so its name must end in "
                         f"{' or '.join(suffixes)}")
    folder = Path(path).absolute().parent
    if not folder.is_dir():
        raise ValueError(f"-o {path}: folder {folder} does not exist")


def _sample(args) -> int:
    import torch

    from .train import load_trained

    if args.num_samples < 1:
        raise ValueError(f"-n must be >= 1, got {args.num_samples}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but no CUDA device is available")
    trained = load_trained(args.checkpoint, ema=not args.no_ema, device=torch.device(args.device))
    options = {key: getattr(args, key) for key in TASK_OPTIONS if getattr(args, key) is not None}
    unknown = [TASK_OPTIONS[key] for key in options if key not in trained.task.options]
    if unknown:
        takes = ", ".join(TASK_OPTIONS[key] for key in trained.task.options) or "none"
        raise ValueError(f"{', '.join(unknown)} does not apply to a checkpoint of the "
                         f"{trained.cfg.task.name!r} task (its options: {takes})")
    if args.t_min is not None and args.spacing is None:
        raise ValueError("--t-min goes with --spacing logsnr or karras")
    chosen = {"kind": args.sampler, "steps": args.steps, "spacing": args.spacing,
              "t_min": args.t_min, "guidance_scale": args.guidance}
    sampler = trained.sampler.replace(**{k: v for k, v in chosen.items() if v is not None})
    output = args.output or trained.task.samples_file
    suffix = Path(trained.task.samples_file).suffix
    _check_output(output, (suffix,), f"a {suffix[1:].upper()} file")
    start = time.perf_counter()
    metrics = trained.task.evaluate(trained.denoiser, sampler, args.num_samples, seed=args.seed,
                                    path=output, device=args.device, progress=True, **options)
    seconds = time.perf_counter() - start
    print(f"sample: {args.num_samples} samples from {args.checkpoint} (step {trained.step}"
          f"{', raw weights' if args.no_ema else ', EMA'}), {sampler.kind} {sampler.steps} steps "
          f"({sampler.spacing}) "
          f"in {seconds:.1f} s: {_metrics(metrics)} -> {output}")
    return 0


def _conformers(args) -> int:
    import torch
    from tqdm.auto import tqdm

    from .conformers.api import MAX_CONFS, ConformerModel, write_conformers
    from .conformers.inputs import printable, read_inputs

    if not 1 <= args.num_samples <= MAX_CONFS:
        raise ValueError(f"-n must be in 1..{MAX_CONFS} (conformers per molecule), got {args.num_samples}")
    if args.prune is not None and not args.prune >= 0:  # nan too
        raise ValueError(f"--prune must be a number >= 0, got {args.prune}")
    _check_output(args.output, (".sdf", ".sdf.gz"), "an SDF")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    chosen = {"kind": args.sampler, "steps": args.steps}
    SamplerConfig.from_dict({k: v for k, v in chosen.items() if v is not None})  # fail early
    start = time.perf_counter()
    entries = read_inputs(args.input)

    def report(name, exc):
        tqdm.write(f"molgen: {printable(name)}: {_one_line(exc)}", file=sys.stderr)

    with _notes():
        failed, written = write_conformers(
            entries, args.output, args.num_samples, on_error=report,
            model=ConformerModel.load(args.checkpoint), seed=args.seed, sampler=args.sampler,
            steps=args.steps, relax=args.relax, prune_rms=args.prune, oversample=args.oversample)
    print(f"conformers: {len(entries) - failed} molecules"
          f"{f' ({failed} failed)' if failed else ''}, {written} conformers in "
          f"{time.perf_counter() - start:.1f} s -> {args.output if written else 'nothing written'}")
    return 1 if failed else 0


def _backbones(args) -> int:
    from .data.proteins import traces_of, write_pdb
    from .metrics.backbones import trace_metrics
    from .proteins.api import BackboneModel, generate_backbones
    from .proteins.motif import motif_rmsd, read_motif

    if args.num_samples < 1:
        raise ValueError(f"-n must be >= 1, got {args.num_samples}")
    _check_output(args.output, (".pdb",), "a PDB file")
    lengths = args.length or [None]
    if len(lengths) not in (1, args.num_samples):
        raise ValueError(f"--length takes one value or one per chain ({args.num_samples}), "
                         f"got {len(lengths)}")
    if args.motif_method is not None and args.motif is None:
        raise ValueError("--motif-method needs --motif")
    motif = read_motif(args.motif) if args.motif is not None else None
    start = time.perf_counter()
    model = BackboneModel.load(args.checkpoint)
    if lengths == [None]:
        lengths = model.task.chain_lengths(args.num_samples, args.seed).tolist()
    lengths = lengths * (args.num_samples // len(lengths))
    structure = generate_backbones(lengths, model=model, sampler=args.sampler, steps=args.steps,
                                   seed=args.seed, helix=args.helix, strand=args.strand,
                                   guidance=args.guidance, motif=motif, motif_start=args.motif_start,
                                   motif_method=args.motif_method or "guided",
                                   clash=args.clash_guidance, progress=True)
    write_pdb(args.output, structure)
    traces = traces_of(structure)
    metrics = trace_metrics(traces)
    if motif is not None:
        rmsd = [motif_rmsd(t, motif, motif.placed(len(t), args.motif_start)) for t in traces]
        metrics.update(motif_rmsd=sum(rmsd) / len(rmsd),
                       motif_success=sum(r < 1.0 for r in rmsd) / len(rmsd))
    print(f"backbones: {len(traces)} chains of {min(lengths)}–{max(lengths)} residues in "
          f"{time.perf_counter() - start:.1f} s: {_metrics(metrics)} -> {args.output}")
    return 0


def _dock(args) -> int:
    from rdkit import Chem

    from .docking.api import NUM_POSES, check_box_given, dock
    from .docking.receptor import DockingInputError
    from .docking.refine import SearchConfig

    if args.raw and args.rounds is not None:
        raise DockingInputError("--raw and --rounds exclude each other: raw poses are not searched from")
    _check_output(args.output, (".sdf",), "an SDF")
    check_box_given(args.box_center, args.box_size, args.autobox_ligand,
                    names=("--box-center", "--box-size", "--autobox-ligand"))
    try:
        refine = not args.raw and (SearchConfig() if args.rounds is None else SearchConfig(rounds=args.rounds))
    except ValueError as e:
        raise DockingInputError(f"--rounds: {e}") from None
    start = time.perf_counter()
    with _notes():
        poses = dock(args.protein, args.ligand, box_center=args.box_center, box_size=args.box_size,
                     autobox_ligand=args.autobox_ligand, seed=args.seed, guidance=args.guidance,
                     n=NUM_POSES if args.num_poses is None else args.num_poses,
                     refine=refine, model=args.checkpoint, progress=True)
    with Chem.SDWriter(args.output) as writer:
        for pose in poses:
            writer.write(pose)
    print(f"dock: {len(poses)} poses in {time.perf_counter() - start:.1f} s -> {args.output}")
    return 0


METRIC_FORMATS = {  # how the metrics of each task read in a line, in this order
    "sliced_w1": "sliced W1 to data {:.4f}", "mmd": "MMD {:.2e}",
    "atom_stability": "atom stability {:.3f}", "molecule_stability": "molecule stability {:.3f}",
    "validity": "validity {:.3f}", "uniqueness": "uniqueness {:.3f}",
    "pixel_mean": "pixel mean {:.3f}", "pixel_std": "pixel std {:.3f}",
    "clipped": "outside [-1, 1] {:.4f}",
    "molecules": "{} molecules", "failed": "{} failed", "conformers": "{} conformers",
}


def _metrics(metrics: dict) -> str:
    """The metrics in a line: the known ones as METRIC_FORMATS says, then the others."""
    known = [form.format(metrics[key]) for key, form in METRIC_FORMATS.items() if key in metrics]
    other = [f"{key.replace('_', ' ')} {value:.4g}" for key, value in metrics.items()
             if key not in METRIC_FORMATS and key != "step" and isinstance(value, (int, float))]
    return ", ".join(known + other)


if __name__ == "__main__":
    sys.exit(main())
