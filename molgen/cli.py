"""The `molgen` command: demo, train, sample.

Mistakes in what the user typed (arguments, config overrides, paths, unknown samplers) end
the command with one line `molgen: error: ...` and exit status 2; anything else is a bug and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
import time

from .diffusion import SAMPLERS, Denoiser, SamplerConfig, make_schedule
from .diffusion.schedules import SCHEDULES

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
    except KeyboardInterrupt:
        return 130


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or exc}: {exc.filename}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="molgen", description="Diffusion generative models for molecules "
                     "and proteins.  `molgen demo` shows the diffusion core without training.")
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
        "sample", help="sample a trained toy checkpoint to a PNG",
        description="Sample a checkpoint written by `molgen train` with the sampler stored in "
                    "it, unless --sampler/--steps override it; plots the samples next to the "
                    "data and prints their distance to the data.")
    smp.add_argument("--checkpoint", required=True, help="checkpoint.pt of a training run")
    smp.add_argument("-o", "--output", default="samples.png", help="PNG to write (default: %(default)s)")
    _add_sampling_args(smp, sampler=None, steps=None, n=2000)
    smp.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    smp.set_defaults(run=_sample)
    return parser


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
    from .toy import ExactEpsModel, mixture_2d
    from .training import evaluate_2d

    start = time.perf_counter()
    sampler = SamplerConfig(kind=args.sampler, steps=args.steps)
    mixture, schedule = mixture_2d(args.mixture), make_schedule(args.schedule)
    denoiser = Denoiser(ExactEpsModel(mixture, schedule), schedule, "eps")
    metrics = evaluate_2d(denoiser, mixture, sampler, args.num_samples, args.seed, args.output)
    print(f"demo: {args.num_samples} samples of the {args.mixture!r} mixture from its exact "
          f"model, {args.sampler} {args.steps} steps ({args.schedule} schedule): "
          f"{_metrics(metrics)} -> {args.output} ({time.perf_counter() - start:.1f} s)")
    return 0


def _train(args) -> int:
    from omegaconf import OmegaConf

    from .training import load_config, train

    cfg = load_config(args.overrides)
    if args.show_config:
        print(OmegaConf.to_yaml(OmegaConf.structured(cfg)), end="")
        return 0
    metrics = train(cfg)
    if metrics:  # rank 0
        print(f"train: step {metrics['step']}, EMA samples ({cfg.sampler.kind} "
              f"{cfg.sampler.steps} steps): {_metrics(metrics)} -> {cfg.out_dir}")
    return 0


def _sample(args) -> int:
    from .training import load_trained

    trained = load_trained(args.checkpoint, ema=not args.no_ema)
    chosen = {"kind": args.sampler, "steps": args.steps}
    sampler = SamplerConfig.from_dict({**trained.sampler.to_dict(),
                                       **{k: v for k, v in chosen.items() if v is not None}})
    metrics = trained.task.evaluate(trained.denoiser, sampler, args.num_samples, args.seed,
                                    args.output)
    print(f"sample: {args.num_samples} samples from {args.checkpoint} (step {trained.step}"
          f"{', raw weights' if args.no_ema else ', EMA'}), {sampler.kind} {sampler.steps} steps: "
          f"{_metrics(metrics)} -> {args.output}")
    return 0


def _metrics(metrics: dict) -> str:
    return f"sliced W1 to data {metrics['sliced_w1']:.4f}, MMD {metrics['mmd']:.2e}"


if __name__ == "__main__":
    sys.exit(main())
