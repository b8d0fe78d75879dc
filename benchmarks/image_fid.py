"""FID of a trained image model for each core sampler, and classifier-free guidance sweeps.

For a checkpoint written by `molgen train` (experiment=mnist, cifar10, ...) this samples
--n images per row with fixed seeds and reports, per row:

  fid        Fréchet Inception distance (molgen.fid) against the first --reference-n images of
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

Writes benchmarks/results/image_fid_<dataset>.json and a 10x10 PNG grid per row next to it.

    python benchmarks/image_fid.py --checkpoint runs/mnist/checkpoint.pt --n 2000
    python benchmarks/image_fid.py --checkpoint ckpt.pt --samplers ddim:50 --guidance
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

from molgen import plotting
from molgen.diffusion import CountingDenoiser, SamplerConfig
from molgen.fid import InceptionFeatures, feature_statistics, frechet_distance, reference_statistics
from molgen.images import load_images
from molgen.qm9 import default_cache_dir
from molgen.training import load_trained

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
    kind, _, steps = spec.partition(":")
    try:
        config = {**base.to_dict(), "kind": kind, "steps": int(steps)}
    except ValueError:
        raise SystemExit(f"bad sampler {spec!r}: use <kind>:<steps>, e.g. ddim:50") from None
    if guidance is not None:
        config["guidance_scale"] = guidance
    return SamplerConfig.from_dict(config)


def evaluate_row(name: str, sampler: SamplerConfig, trained, args, inception, reference,
                 classifier, grids: Path) -> dict:
    """Sample args.n images, time them, and score them: FID, and the classifier's accuracy."""
    classes = trained.cfg.task.num_classes
    counters = []  # one per sampling batch

    def counted(space):
        counters.append(CountingDenoiser(trained.denoiser(space)))
        return counters[-1]

    start = time.perf_counter()
    images = trained.task.sample(counted, sampler, args.n, args.seed, progress=True)
    seconds = time.perf_counter() - start
    per_image = counters[0].nfe * (2 if sampler.guidance_scale else 1)  # CFG: conditional + null
    row = dict(row=name, sampler=sampler.to_dict(), nfe=per_image,
               seconds_per_image=seconds / args.n,
               fid=frechet_distance(*feature_statistics(images, inception), *reference),
               published_cifar10_fid=PUBLISHED_CIFAR10.get(name))
    if classes:
        row["accuracy"] = accuracy(classifier, images, torch.arange(args.n) % classes)
    plotting.image_grid_png(grids / f"{name.replace(' ', '_').replace(':', '-')}.png",
                            images[:100], ncol=classes or None)
    return row


def reference_label(dataset: str, n: int) -> str:
    return f"{dataset} train[:{n}]"


def merged_rows(out: Path, args, names: list[str]) -> list[dict]:
    """The rows of an earlier run in `out` that this run does not redo."""
    if not out.is_file():
        return []
    old = json.loads(out.read_text())
    same = (old["checkpoint"], old["n"], old["reference"], old["seed"])
    ours = (str(args.checkpoint), args.n, reference_label(old["dataset"], args.reference_n), args.seed)
    if same != ours:
        raise SystemExit(f"--merge: {out} holds another setting {same}, not {ours}")
    return [row for row in old["rows"] if row["row"] not in names]


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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a molgen image checkpoint")
    p.add_argument("--n", type=int, default=10000, help="samples per row (default 10000)")
    p.add_argument("--samplers", nargs="*", default=SAMPLERS, help="<kind>:<steps> rows (default: %(default)s)")
    p.add_argument("--guidance", type=float, nargs="*", default=[0.0, 1.0, 3.0, 5.0],
                   help="CFG scales w for a class-conditional model (0: none; default 0 1 3 5)")
    p.add_argument("--guidance-sampler", default="dpmpp_2m:20", help="sampler of the guidance rows")
    p.add_argument("--reference-n", type=int, default=10000, help="training images in the FID reference")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path (default benchmarks/results/image_fid_<dataset>.json)")
    p.add_argument("--merge", action="store_true",
                   help="keep the rows of an existing --out of the same checkpoint, n, reference and "
                        "seed, replacing those run again (rows run at different times, e.g. DDPM 1000)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start, load_start = time.perf_counter(), os.getloadavg()

    trained = load_trained(args.checkpoint)
    dataset, classes = trained.cfg.task.dataset, trained.cfg.task.num_classes
    out = args.out or HERE / "results" / f"image_fid_{dataset}.json"
    grids = out.with_suffix("")
    grids.mkdir(parents=True, exist_ok=True)
    inception = InceptionFeatures()
    reference = reference_statistics(dataset, "train", limit=args.reference_n, model=inception)
    test_images, _ = load_images(dataset, "test")
    floor = frechet_distance(*feature_statistics(test_images[:args.n], inception), *reference)
    classifier, classifier_acc = train_classifier(dataset, classes) if classes else (None, None)
    print(f"{dataset}: reference {args.reference_n} training images; real data floor at N={args.n}: "
          f"FID {floor:.2f}" + (f"; classifier test accuracy {classifier_acc:.4f}" if classes else ""))

    rows = []
    if classes:
        rows += [(f"{args.guidance_sampler} w={w:g}", parse_sampler(args.guidance_sampler, trained.sampler, w))
                 for w in args.guidance]
    rows += [(spec, parse_sampler(spec, trained.sampler)) for spec in args.samplers]
    results, done = merged_rows(out, args, [name for name, _ in rows]) if args.merge else [], {}
    for name, sampler in rows:
        key = json.dumps(sampler.to_dict(), sort_keys=True)
        if key in done:  # e.g. "dpmpp_2m:20" after "dpmpp_2m:20 w=0": the same samples
            row = {**done[key], "row": name, "published_cifar10_fid": PUBLISHED_CIFAR10.get(name)}
        else:
            row = done[key] = evaluate_row(name, sampler, trained, args, inception, reference,
                                           classifier, grids)
        results.append(row)
        print(f"{name:24s} NFE {row['nfe']:5d}  FID {row['fid']:8.2f}  s/image {row['seconds_per_image']:.4f}"
              + (f"  accuracy {row['accuracy']:.3f}" if classes else ""), flush=True)
        write(out, args, trained, dataset, floor, classifier_acc, results, load_start, t_start)
    order, published_order = sampler_order(results)
    print(f"\nsampler order by FID, ours:      {' < '.join(order)}\n"
          f"published (CIFAR-10, FID-50k):   {' < '.join(published_order)}")
    print(f"wrote {out} and the grids in {grids}/")


if __name__ == "__main__":
    main()
