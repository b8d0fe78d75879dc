"""FID of a trained image model for each core sampler, and classifier-free guidance sweeps.

For a checkpoint written by `molgen train` (experiment=mnist, cifar10, ...) this samples
--n images per row with fixed seeds and reports, per row:

  fid        Fréchet Inception distance (molgen.metrics.fid) against the first --reference-n images of
             the training split; FID is biased upwards at small N, so only rows of the same N
             compare, and the `real data` row (N test images against the same reference) is
             the score of a perfect model at this N
  nfe        network evaluations per image, counted (CFG doubles them: conditional + null)
  s/image    wall time of sampling per image, on --threads threads of this machine
  accuracy   (class-conditional models) fraction of samples that a separately trained small
             CNN (trained here on the training split, cached) assigns to the requested class

Rows, in this order: for a class-conditional model, the --guidance scales w ∈ {0, 1, 3, 5}
with --guidance-sampler; then the --samplers (default: DDIM 10/20/50/100, DPM-Solver++(2M)
10/20, Heun on the probability-flow ODE with 25 steps (48 NFE from t = 1 of the cosine
schedule, where its first step is Euler's), DDPM 1000: the costliest
last), each at the checkpoint's own guidance scale (a conditional model samples the classes
0, 1, ..., 9 in turn).  The JSON is rewritten after every row, so an interrupted run keeps
the rows it finished.  Guidance here is molgen's convention, ε̃ = (1 + w) ε(x, c) − w ε(x, ∅):
w = 0 is the plain conditional model (the reference document's scale 1.0).

`score` writes benchmarks/results/image_fid_<dataset>.json and a 10x10 PNG grid per row next
to it.  `device` runs on the lent GPU (through benchmarks/gpu.sh): it trains an experiment for
a wall-clock budget and brings back the EMA model and each row's images, which `score
--samples-from` then scores here (benchmarks/README.md has the recipe).

    python benchmarks/image_fid.py score --checkpoint runs/mnist/checkpoint.pt --n 2000
    python benchmarks/image_fid.py score --checkpoint ckpt.pt --samplers ddim:50 --guidance
    python benchmarks/image_fid.py device --out $OUT --samplers dpmpp_2m:20 --guidance
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch
from torch import nn

from device_step import earlier_rows, fits, join_parts, open_trainer, split_file, sync, train_for, write_json
from molgen import plotting
from molgen.diffusion import CountingDenoiser, SamplerConfig
from molgen.metrics.fid import InceptionFeatures, feature_statistics, frechet_distance, reference_statistics
from molgen.data.images import from_uint8, load_images, to_uint8
from molgen.data.paths import default_cache_dir
from molgen.train import CHECKPOINT, LOG, export_model, load_trained, save_checkpoint

HERE = Path(__file__).resolve().parent
SAMPLERS = ["ddim:10", "ddim:20", "ddim:50", "ddim:100", "dpmpp_2m:10", "dpmpp_2m:20", "heun:25", "ddpm:1000"]
PUBLISHED_CIFAR10 = {  # FID-50k on CIFAR-10 (unconditional): Ho et al. 2020; Song et al. 2021 (DDIM);
    "ddpm:1000": 3.17,  # Lu et al. 2022 (DPM-Solver++, with a stronger model)
    "ddim:10": 8.23, "ddim:20": 6.84, "ddim:50": 4.67, "dpmpp_2m:10": 2.91,
}


class DigitClassifier(nn.Module):
    """A small CNN for the guidance rows' accuracy: three convolutions, pooling to 4x4, two
    linear layers."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(),
            nn.Linear(128, classes))

    def forward(self, x):
        return self.net(x)


def train_classifier(dataset: str, classes: int, epochs: int = 3, seed: int = 0) -> tuple[nn.Module, float]:
    """The classifier for `dataset` (trained on its training split with random ±2 pixel shifts,
    cached under $MOLGEN_CACHE/classifiers) and its accuracy on the test split."""
    images, labels = load_images(dataset, "train")
    model = DigitClassifier(images.shape[1], classes)
    path = default_cache_dir() / "classifiers" / f"{dataset}-e{epochs}-s{seed}.pt"
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
    else:
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(epochs):
            for idx in torch.randperm(len(images), generator=g).split(128):
                dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
                x = torch.roll(images[idx], (dy, dx), dims=(2, 3))
                loss = nn.functional.cross_entropy(model(x), labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
    model.eval()
    test_images, test_labels = load_images(dataset, "test")
    return model, accuracy(model, test_images, test_labels)


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    predicted = torch.cat([model(x).argmax(1) for x in images.split(500)])
    return float((predicted == labels).float().mean())


def parse_sampler(spec: str, base: SamplerConfig, guidance: float | None = None) -> SamplerConfig:
    """A row's sampler: `SamplerConfig.from_spec` on the checkpoint's, at guidance w if given."""
    try:
        config = SamplerConfig.from_spec(spec, base)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    return config if guidance is None else config.replace(guidance_scale=guidance)


def file_label(name: str) -> str:
    """A row's name as a file name ("dpmpp_2m:20 w=1" -> "dpmpp_2m_20_w_1")."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name)


def sampler_rows(args, base: SamplerConfig, classes: int) -> list[tuple[str, SamplerConfig]]:
    """The rows (name, sampler) that args ask for: the guidance sweep of a class-conditional
    model, then the samplers at the checkpoint's own guidance scale."""
    rows = []
    if classes:
        rows += [(f"{args.guidance_sampler} w={w:g}", parse_sampler(args.guidance_sampler, base, w))
                 for w in args.guidance]
    return rows + [(spec, parse_sampler(spec, base)) for spec in args.samplers]


def sampler_key(sampler: SamplerConfig) -> str:
    """Rows with equal keys draw the same images (e.g. "dpmpp_2m:20" and "dpmpp_2m:20 w=0")."""
    return json.dumps(sampler.to_dict(), sort_keys=True)


def draw(sampler: SamplerConfig, trained, n: int, seed: int, device="cpu", progress=True) -> tuple[torch.Tensor, dict]:
    """n images as 8-bit pixels (what FID reads: molgen.metrics.fid rounds to them), with the counted
    NFE per image and the wall time per image."""
    counters = []  # one per sampling batch

    def counted(space):
        counters.append(CountingDenoiser(trained.denoiser(space)))
        return counters[-1]

    sync(torch.device(device))
    start = time.perf_counter()
    images = trained.task.sample(counted, sampler, n, seed=seed, device=device, progress=progress)
    sync(torch.device(device))
    seconds = time.perf_counter() - start
    per_image = counters[0].nfe * (2 if sampler.guidance_scale else 1)  # CFG: conditional + null
    return to_uint8(images), {"nfe": per_image, "seconds_per_image": seconds / n}


def device_samples(run: Path, name: str, n: int) -> tuple[torch.Tensor, dict] | None:
    """The first n images of row `name` that a device step wrote into run/, with its timing
    there; None when it has not that row or fewer images."""
    path = join_parts(run, f"samples_{file_label(name)}.pt")
    if not path.is_file():
        return None
    saved = torch.load(path, weights_only=True)
    if len(saved["images"]) < n:
        return None
    return saved["images"][:n], {"nfe": saved["nfe"], "seconds_per_image": saved["seconds_per_image"],
                                 "sampled_on": saved["device"]}


def score_row(name: str, sampler: SamplerConfig, images: torch.Tensor, timing: dict, classes: int,
              inception, reference, classifier, grids: Path) -> dict:
    """FID of 8-bit images, and for a class-conditional model the classifier's accuracy on the
    classes they were drawn for (0, 1, ..., 9 in turn)."""
    x = from_uint8(images.numpy())
    row = dict(row=name, sampler=sampler.to_dict(), **timing,
               fid=frechet_distance(*feature_statistics(x, inception), *reference),
               published_cifar10_fid=PUBLISHED_CIFAR10.get(name))
    if classes:
        row["accuracy"] = accuracy(classifier, x, torch.arange(len(x)) % classes)
    plotting.image_grid_png(grids / f"{file_label(name)}.png", x[:100], ncol=classes or None)
    return row


def reference_label(dataset: str, n: int) -> str:
    return f"{dataset} train[:{n}]"


def sampler_order(results: list[dict]) -> tuple[list[str], list[str]]:
    """The rows with a published anchor, ordered by our FID and by the published one."""
    ours = {r["row"]: r["fid"] for r in results if r["published_cifar10_fid"] is not None}
    return (sorted(ours, key=ours.get),
            [k for k in sorted(PUBLISHED_CIFAR10, key=PUBLISHED_CIFAR10.get) if k in ours])


def write(out: Path, args, trained, dataset: str, floor: float, classifier_acc, results: list[dict],
          load_start, t_start: float) -> None:
    order, published_order = sampler_order(results)
    output = dict(
        description="FID per sampler and CFG scale of a trained image model (benchmarks/image_fid.py)",
        checkpoint=str(args.checkpoint), step=trained.step, config=dataclasses.asdict(trained.cfg),
        dataset=dataset, n=args.n, reference=reference_label(dataset, args.reference_n), seed=args.seed,
        real_data_fid=floor, classifier_test_accuracy=classifier_acc,
        guidance_convention="eps = (1 + w) eps(x, c) - w eps(x, null); w = 0 is no guidance",
        rows=results, order_ours=order, order_published=published_order,
        machine=dict(platform=platform.platform(), python=sys.version.split()[0], threads=args.threads,
                     torch=torch.__version__, loadavg_start=list(load_start), loadavg_end=list(os.getloadavg())),
        total_runtime_s=time.perf_counter() - t_start)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(output, indent=1) + "\n")
    tmp.replace(out)


def cmd_score(args) -> None:
    torch.set_num_threads(args.threads)
    t_start, load_start = time.perf_counter(), os.getloadavg()
    trained = load_trained(join_parts(args.checkpoint.parent, args.checkpoint.name))
    dataset, classes = trained.cfg.task.dataset, trained.cfg.task.num_classes
    out = args.out or HERE / "results" / f"image_fid_{dataset}.json"
    grids = out.with_suffix("")
    grids.mkdir(parents=True, exist_ok=True)
    inception = InceptionFeatures()
    reference = reference_statistics(dataset, "train", limit=args.reference_n, model=inception)
    rows = sampler_rows(args, trained.sampler, classes)
    setting = dict(checkpoint=str(args.checkpoint), n=args.n,
                   reference=reference_label(dataset, args.reference_n), seed=args.seed)
    results = earlier_rows(out, setting, [name for name, _ in rows], "row") if args.merge else []
    # the floor of an earlier run of the same setting is the same number: merged rows reuse it
    # (at N = 10k it costs as much Inception time as a row)
    floor = json.loads(out.read_text())["real_data_fid"] if args.merge and out.is_file() else \
        frechet_distance(*reference_statistics(dataset, "test", limit=args.n, model=inception), *reference)
    classifier, classifier_acc = train_classifier(dataset, classes) if classes else (None, None)
    print(f"{dataset}: reference {args.reference_n} training images; real data floor at N={args.n}: "
          f"FID {floor:.2f}" + (f"; classifier test accuracy {classifier_acc:.4f}" if classes else ""))
    done = {}
    for name, sampler in rows:
        key = sampler_key(sampler)
        if key in done:  # e.g. "dpmpp_2m:20" after "dpmpp_2m:20 w=0": the same samples
            row = {**done[key], "row": name, "published_cifar10_fid": PUBLISHED_CIFAR10.get(name)}
        else:
            drawn = args.samples_from and device_samples(args.samples_from, name, args.n)
            if args.samples_from and not drawn:
                print(f"{name}: not in {args.samples_from} with {args.n} images; skipped")
                continue
            images, timing = drawn or draw(sampler, trained, args.n, args.seed)
            row = done[key] = score_row(name, sampler, images, timing, classes, inception,
                                        reference, classifier, grids)
        results.append(row)
        print(f"{name:24s} NFE {row['nfe']:5d}  FID {row['fid']:8.2f}  s/image {row['seconds_per_image']:.4f}"
              + (f"  accuracy {row['accuracy']:.3f}" if classes else ""), flush=True)
        write(out, args, trained, dataset, floor, classifier_acc, results, load_start, t_start)
    order, published_order = sampler_order(results)
    print(f"\nsampler order by FID, ours:      {' < '.join(order)}\n"
          f"published (CIFAR-10, FID-50k):   {' < '.join(published_order)}")
    print(f"wrote {out} and the grids in {grids}/")


def cmd_device(args) -> None:
    """On the lent GPU (gpu.sh runs it): train for the time the rows leave, export the EMA
    model, draw --n images per row, and put them in $OUT as far as its limits allow."""
    t_start = time.perf_counter()
    deadline = t_start + args.budget
    out, work = Path(args.out), Path(args.workdir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                              if k != "func"},
                     "torch": torch.__version__, "platform": platform.platform()}

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", flush=True)

    trainer, summary["gpu"] = open_trainer(args.experiment, args.device, work, args.override)
    cfg, device = trainer.cfg, trainer.env.device
    log(f"device {summary['gpu']['name']}; experiment {args.experiment} {args.override}; "
        f"resumed at step {trainer.step}")
    rows = sampler_rows(args, cfg.sampler, cfg.task.num_classes)

    # -- how long sampling will take: one NFE at the sampling batch, timed
    batch = min(cfg.task.sample_batch, args.n)
    inputs = [torch.randn(batch, *trainer.task.image_shape(), device=device),
              torch.full((batch,), 0.5, device=device)]
    if cfg.task.num_classes:
        inputs.append(torch.zeros(batch, dtype=torch.long, device=device))
    trainer.model.eval()
    with torch.no_grad():
        times = []
        for _ in range(4):
            sync(device)
            start = time.perf_counter()
            trainer.model(*inputs)
            sync(device)
            times.append(time.perf_counter() - start)
    nfe_seconds = min(times[1:])

    def row_seconds(sampler: SamplerConfig) -> float:  # with a margin; Heun and CFG take 2 NFE per step
        nfe = sampler.steps * (2 if sampler.kind == "heun" else 1) * (2 if sampler.guidance_scale else 1)
        return 1.3 * nfe * math.ceil(args.n / batch) * nfe_seconds

    reserve = sum(row_seconds(s) for _, s in rows) + 30
    train_seconds = max(0.0, min(args.train_seconds, deadline - time.perf_counter() - reserve))
    summary["sampling_probe"] = {"batch": batch, "seconds_per_nfe": nfe_seconds, "reserve": reserve}
    log(f"one NFE on {batch} images {1e3 * nfe_seconds:.1f} ms: {reserve:.0f} s kept for "
        f"sampling; training for {train_seconds:.0f} s")

    if train_seconds > 0:
        summary["training"] = {"experiment": args.experiment,
                               **train_for(trainer, train_seconds, len(trainer.task.data[0]))}
        log(f"step {trainer.step}: {summary['training']['steps_this_run']} steps in "
            f"{summary['training']['seconds']:.0f} s, loss {summary['training']['final_loss_mean_last_500']:.4f}")
    if not (work / CHECKPOINT).is_file():
        raise SystemExit(f"{work} holds no run to draw from: train first (--train-seconds > 0)")
    export_model(work / CHECKPOINT, work / "model_ema.pt")
    if train_seconds > 0:  # the new weights come back; a sampling-only call brings images alone
        summary["model_parts"] = split_file(work / "model_ema.pt", out)
        (out / LOG).write_bytes((work / LOG).read_bytes())
    write_json(out / "summary.json", summary)

    trained = load_trained(work / "model_ema.pt", device=device)
    summary["rows"], drawn = {}, {}
    for name, sampler in rows:
        key = sampler_key(sampler)
        nbytes = args.n * math.prod(trained.task.image_shape()) + 4096
        if key in drawn:  # e.g. "dpmpp_2m:20" after "dpmpp_2m:20 w=0": `score` reuses its images
            summary["rows"][name] = f"the images of {drawn[key]!r}"
        elif not fits(out, nbytes):
            summary["rows"][name] = "skipped: the files that come back are full"
        elif time.perf_counter() + row_seconds(sampler) > deadline:
            summary["rows"][name] = "skipped: out of time"
        else:
            images, timing = draw(sampler, trained, args.n, args.seed, device, progress=False)
            path = work / f"samples_{file_label(name)}.pt"
            save_checkpoint({"images": images, "row": name, "sampler": sampler.to_dict(),
                             "device": summary["gpu"]["name"], **timing}, path)
            summary["rows"][name] = {**timing, "files": split_file(path, out)}
            drawn[key] = name
        log(f"{name}: {summary['rows'][name]}")
        write_json(out / "summary.json", summary)
    summary["wall_seconds"] = time.perf_counter() - t_start
    write_json(out / "summary.json", summary)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", help="FID and accuracy of each row, here")
    device = sub.add_parser("device", help="on the lent GPU: train, then draw each row's images")
    for q in (score, device):
        q.add_argument("--n", type=int, default=10000, help="samples per row (default 10000)")
        q.add_argument("--samplers", nargs="*", default=SAMPLERS, help="<kind>:<steps> rows (default: %(default)s)")
        q.add_argument("--guidance", type=float, nargs="*", default=[0.0, 1.0, 3.0, 5.0],
                       help="CFG scales w for a class-conditional model (0: none; default 0 1 3 5)")
        q.add_argument("--guidance-sampler", default="dpmpp_2m:20", help="sampler of the guidance rows")
        q.add_argument("--seed", type=int, default=0)
    score.add_argument("--checkpoint", type=Path, required=True,
                       help="a molgen image checkpoint (or the model_ema.pt of a device run)")
    score.add_argument("--samples-from", type=Path, default=None,
                       help="a device run's folder: score the rows it drew (and only those)")
    score.add_argument("--reference-n", type=int, default=10000, help="training images in the FID reference")
    score.add_argument("--threads", type=int, default=os.cpu_count())
    score.add_argument("--out", type=Path, default=None,
                       help="JSON path (default benchmarks/results/image_fid_<dataset>.json)")
    score.add_argument("--merge", action="store_true",
                       help="keep the rows of an existing --out of the same checkpoint, n, reference and "
                            "seed, replacing those run again (rows run at different times, e.g. DDPM 1000)")
    score.set_defaults(func=cmd_score)
    device.add_argument("--out", required=True, help="folder for what comes back (the tool's $OUT)")
    device.add_argument("--experiment", default="cifar10_gpu")
    device.add_argument("--workdir", default="/tmp/image_run",
                        help="the training run's out_dir: a later call on the still-warm machine resumes it")
    device.add_argument("--device", default="cuda")
    device.add_argument("--override", action="append", default=[], help="extra hydra override")
    device.add_argument("--budget", type=float, default=500, help="wall seconds for everything")
    device.add_argument("--train-seconds", type=float, default=400, help="at most this much training")
    device.set_defaults(func=cmd_device)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
