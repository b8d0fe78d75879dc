"""QM9 3-D molecule generation by EDM's protocol (Hoogeboom et al. 2022), issue 4.

Four steps, each a subcommand:

  device      on the GPU machine (through benchmarks/gpu.sh): train `experiment=qm9` for a
              wall-clock budget, export the EMA weights, sample the same N molecules (same atom
              counts, same x_T) with several samplers, and the PF-ODE NLL of test molecules if
              time is left.  Needs neither RDKit nor qm9pack (only the parsed QM9 cache).
  metrics     here, with RDKit: EDM's metrics of each sample set (atom and molecule stability,
              validity, valid x unique, novelty against the training split), beside EDM's
              published row, into results/qm9_generation.json and a printed table.
  samplers    here, on any model (a CPU one): EDM's metrics of n molecules per sampler row
              (kind:steps[:setting=value...]), the same molecules' x_T for every row.
  throughput  here: CPU throughput of the EGNN (experiment=qm9 size) and of the e3nn denoiser
              (molgen.nn.nequip, default size) per denoiser call, sampling and training, into the
              same JSON under "throughput".

    bash benchmarks/gpu.sh python3 benchmarks/qm9_generation.py device --out $OUT   # on the device
    .venv/bin/python benchmarks/qm9_generation.py metrics --run runs/qm9_gpu
    .venv/bin/python benchmarks/qm9_generation.py samplers --model model.pt --out results/qm9_samplers_cpu.json
    .venv/bin/python benchmarks/qm9_generation.py throughput

The device step writes at most 8 files (the device tool's limit) and none over 15 MiB: the
exported EMA model is split into parts that `metrics` joins again.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

from molgen.diffusion import SamplerConfig
from device_step import earlier_rows, join_parts, open_trainer, split_file, sync, train_for, write_json

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "qm9_generation.json"
CARRY = "checkpoint_carry.pt"  # the run as it travels between leases (molgen.train.carry_checkpoint)
DEFAULT_SAMPLERS = "dpmpp_2m:20,ddpm:1000,ddim:100,ddim:50,dpmpp_2m:50"

# EDM's unconditional QM9 model and the data, as published (Hoogeboom et al. 2022, Tables 2
# and 3; percentages; NLL in nats, EDM's variational bound on -log p(x, h, M)).
EDM_ROW = {"atom_stability": 98.7, "molecule_stability": 82.0, "validity": 91.9,
           "valid_unique": 90.7, "novelty": None, "nll": -110.7}
DATA_ROW = {"atom_stability": 99.0, "molecule_stability": 95.2, "validity": 97.7,
            "valid_unique": 97.7, "novelty": None, "nll": None}
# The training command of EDM's repository README (ehoogeboom/e3_diffusion_for_molecules):
# --n_epochs 3000 --batch_size 64, i.e. 3000 x 100,000 / 64 steps.
EDM_TRAINING = {"epochs": 3000, "batch_size": 64, "steps": 3000 * 100_000 // 64}


def _parse_samplers(spec: str) -> list[tuple[str, SamplerConfig]]:
    """"kind:steps[:setting=value...],..." -> (label, sampler) per item; the label is the item
    with ':' as '_' (e.g. dpmpp_2m_20)."""
    try:
        return [(item.strip().replace(":", "_"), SamplerConfig.from_spec(item.strip()))
                for item in spec.split(",")]
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


# --------------------------------------------------------------------------- device

def _molecule_batch(dataset, rows: torch.Tensor, charges: bool, device):
    """Molecules `rows` of a QM9 split as one packed state and its space, on device."""
    from molgen.diffusion.spaces import MoleculeSpace
    from molgen.data.qm9 import ATOM_SYMBOLS

    mols = dataset.collate(rows)
    space = MoleculeSpace.from_sizes(mols["n_atoms"], device)
    one_hot = torch.nn.functional.one_hot(mols["atom_types"], len(ATOM_SYMBOLS))
    x = space.pack(mols["positions"].to(device), one_hot.to(device),
                   mols["charges"].to(device) if charges else None)
    return x, space


class _OutOfTime(Exception):
    pass


def _test_split(source: str):
    """QM9's test split, or None where the data holds the train split alone."""
    from molgen.data.qm9 import QM9

    try:
        return QM9("test", source=source)
    except ValueError:
        return None


def cmd_device(args) -> int:
    t_start = time.perf_counter()
    deadline = t_start + args.budget
    from molgen.metrics import molecules as metrics
    from molgen.diffusion import log_likelihood
    from molgen.train import CHECKPOINT, carry_checkpoint, export_model, load_trained, save_checkpoint

    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    out, work = Path(args.out), Path(args.workdir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"args": {k: v for k, v in vars(args).items() if k != "func"},
                     "torch": torch.__version__,
                     "python": sys.version.split()[0], "platform": platform.platform()}
    summary_path = out / "summary.json"

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", flush=True)

    if args.resume and not Path(args.resume).is_file():
        raise SystemExit(f"--resume {args.resume}: no such file")
    if args.resume and not (work / CHECKPOINT).exists():  # continue a run carried in
        work.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.resume, work / CHECKPOINT)
    trainer, summary["gpu"] = open_trainer(
        args.experiment, args.device, work,
        [f"checkpoint_every={args.checkpoint_every}", *args.override])
    device = trainer.env.device
    log(f"device {summary['gpu']['name']}; experiment {args.experiment} {args.override}")
    task = trainer.task
    n_params = sum(p.numel() for p in trainer.model.parameters())
    log(f"model {type(trainer.model).__name__}: {n_params / 1e6:.2f} M parameters; "
        f"train split {len(task.data)} molecules; resumed at step {trainer.step}")

    # -- how long one sampling NFE takes at the sampling batch, to size the training time
    trainer.model.eval()
    n_probe = min(args.sample_batch, args.samples)
    sizes = task.atom_counts(n_probe, args.seed)
    from molgen.diffusion.spaces import MoleculeSpace
    space = MoleculeSpace.from_sizes(sizes, device)
    probe_x = space.noise(torch.empty(int(sizes.sum()), task.num_features + 3, device=device))
    with torch.no_grad():
        den = trainer.denoiser(trainer.model, space)
        t = torch.full((n_probe,), 0.5, device=device)
        for _ in range(2):
            den(probe_x, t)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(3):
            den(probe_x, t)
        sync(device)
    nfe_seconds = (time.perf_counter() - t0) / 3
    del probe_x, den
    trainer.model.train()
    total_nfe = sum(sampler.steps for _, sampler in _parse_samplers(args.samplers))
    batches = math.ceil(args.samples / args.sample_batch)
    sample_reserve = 1.15 * total_nfe * batches * nfe_seconds + 10
    nll_reserve = args.nll_reserve if args.nll_molecules else 0
    left = deadline - time.perf_counter()
    train_seconds = min(args.train_seconds, left - sample_reserve - nll_reserve - args.slack)
    train_seconds = max(train_seconds, args.min_train_seconds)
    summary["sampling_probe"] = {"molecules": n_probe, "seconds_per_nfe": nfe_seconds,
                                 "predicted_sampling_seconds": sample_reserve}
    log(f"one NFE on {n_probe} molecules: {1e3 * nfe_seconds:.1f} ms -> reserve "
        f"{sample_reserve:.0f} s for {total_nfe} NFE x {batches} batch(es); training for "
        f"{train_seconds:.0f} s")

    # -- train for train_seconds of wall time (the Trainer's own loop, log and checkpoints)
    summary["training"] = {"experiment": args.experiment, "tf32": args.tf32,
                           **train_for(trainer, train_seconds, len(task.data))}
    steps_done = summary["training"]["steps_this_run"]
    log(f"trained {steps_done} steps in {summary['training']['seconds']:.0f} s; step {trainer.step}, "
        f"{summary['training']['epochs']:.2f} epochs")
    del trainer
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # what comes back: the run as a carry checkpoint (bf16 weights and EMA, no optimizer),
    # which the next lease continues from (--resume) and `metrics` samples from
    carry = work / CARRY
    carry_checkpoint(work / CHECKPOINT, carry)
    summary["carry_parts"] = split_file(carry, out)
    summary["carry_bytes"] = carry.stat().st_size
    for name in ("log.jsonl",):
        (out / name).write_bytes((work / name).read_bytes())
    write_json(summary_path, summary)
    log(f"carry checkpoint at step {summary['training']['steps']} "
        f"({carry.stat().st_size / 2**20:.1f} MiB) in {len(summary['carry_parts'])} part(s)")
    model_path = work / "model_ema.pt"
    export_model(work / CHECKPOINT, model_path)  # the fp32 EMA weights, for sampling here

    # -- sample: the same seed gives every sampler the same atom counts and the same x_T
    trained = load_trained(model_path, device=device)
    trained.task.cfg.sample_batch = args.sample_batch
    samples, summary["sampling"] = {}, {}
    per_nfe_molecule = nfe_seconds / n_probe
    for label, sampler in _parse_samplers(args.samplers):
        kind, steps = sampler.kind, sampler.steps
        left = deadline - time.perf_counter() - nll_reserve - args.slack
        n = args.samples
        need = 1.15 * steps * n * per_nfe_molecule
        if need > left:
            n = int(left / (1.15 * steps * per_nfe_molecule)) // 50 * 50
            if n < args.min_samples:
                log(f"{label}: skipped, {left:.0f} s left but {need:.0f} s needed")
                summary["sampling"][label] = {"skipped": f"out of time ({left:.0f} s left)"}
                continue
            log(f"{label}: {n} molecules instead of {args.samples} to fit the time left")
        sync(device)
        t0 = time.perf_counter()
        molecules = trained.task.sample(trained.denoiser, sampler,
                                        n, seed=args.seed, device=device)
        sync(device)
        seconds = time.perf_counter() - t0
        per_nfe_molecule = max(per_nfe_molecule, seconds / (steps * n))
        stab = metrics.stability(molecules)
        samples[label] = {
            "kind": kind, "steps": steps,
            "n_atoms": torch.tensor([len(t) for _, t in molecules]),
            "positions": torch.cat([p for p, _ in molecules]).float(),
            "atom_types": torch.cat([t for _, t in molecules]).to(torch.uint8)}
        summary["sampling"][label] = {"kind": kind, "steps": steps, "nfe": steps, "n": n,
                                      "sampler": sampler.to_dict(),
                                      "seconds": seconds, "molecules_per_second": n / seconds,
                                      "atom_stability": stab.atom_stability,
                                      "molecule_stability": stab.molecule_stability}
        save_checkpoint(samples, out / "samples.pt")
        write_json(summary_path, summary)
        log(f"{label}: {n} molecules in {seconds:.1f} s; atom stability "
            f"{stab.atom_stability:.3f}, molecule stability {stab.molecule_stability:.3f}")

    # -- PF-ODE NLL of test molecules (Hutchinson trace), stopped at the deadline
    test = _test_split(trained.task.cfg.source) if args.nll_molecules else None
    if args.nll_molecules and test is None:
        summary["nll"] = {"skipped": "no test split here (gpu.sh --prepare qm9_train sends the train split alone)"}
        log(summary["nll"]["skipped"])
    if test is not None:
        rows = torch.arange(min(args.nll_molecules, len(test)))  # the split file's random order
        x, space = _molecule_batch(test, rows, trained.task.cfg.charges, device)
        nll_deadline = deadline - args.slack
        calls = [0]

        def guarded(*a, **k):
            if time.perf_counter() > nll_deadline:
                raise _OutOfTime
            calls[0] += 1
            return trained.model(*a, **k)

        denoiser = trained.task.denoiser(guarded, trained.schedule,
                                         trained.cfg.diffusion.prediction, space)
        t0 = time.perf_counter()
        try:
            res = log_likelihood(denoiser, x, rtol=args.nll_tol, atol=args.nll_tol,
                                 generator=torch.Generator(device).manual_seed(args.seed))
            nll = res["nll"].double()
            summary["nll"] = {
                "molecules": len(rows), "split": "test", "trace": "hutchinson",
                "rtol": args.nll_tol, "atol": args.nll_tol, "nfe": int(res["nfe"]),
                "seconds": time.perf_counter() - t0,
                "nll_nats_mean": float(nll.mean()),
                "nll_nats_sem": float(nll.std() / math.sqrt(len(nll))),
                "bits_per_dim_mean": float(res["bits_per_dim"].double().mean()),
                "note": "continuous density of the packed state (positions in Å on the "
                        "CoM-free subspace, one-hot x 0.25, charge x 0.1); no atom-count "
                        "prior, no dequantization: not EDM's bound on -log p(x, h, M)"}
            log(f"NLL of {len(rows)} test molecules: {float(nll.mean()):.1f} nats "
                f"({res['nfe']} NFE, {time.perf_counter() - t0:.0f} s)")
        except _OutOfTime:
            summary["nll"] = {"skipped": f"stopped at the deadline after {calls[0]} network "
                                         f"calls ({time.perf_counter() - t0:.0f} s)"}
            log(summary["nll"]["skipped"])
    summary["wall_seconds"] = time.perf_counter() - t_start
    write_json(summary_path, summary)
    log("done")
    return 0


# --------------------------------------------------------------------------- metrics

def _molecules(entry: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    sizes = entry["n_atoms"].tolist()
    return list(zip(entry["positions"].split(sizes), entry["atom_types"].long().split(sizes)))


def train_smiles(cache: Path) -> list[str]:
    """SMILES (EDM's bond rule, largest fragment) of the valid molecules of the train split."""
    if cache.is_file():
        return cache.read_text().split()
    from molgen.metrics import molecules as metrics
    from molgen.data.qm9 import QM9

    train = QM9("train")
    mols = [(train.positions[a:b], train.atom_types[a:b])
            for a, b in zip(train.offsets[:-1].tolist(), train.offsets[1:].tolist())]
    smiles = [s for s in metrics.smiles(mols) if s is not None]
    cache.write_text("\n".join(smiles) + "\n")
    return smiles


def _load_results(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _pct(v) -> str:
    return "   -  " if v is None else f"{v:6.1f}"


def cmd_metrics(args) -> int:
    from molgen.metrics import molecules as metrics

    run = Path(args.run)
    summary = json.loads((run / "summary.json").read_text())
    samples = torch.load(run / "samples.pt", weights_only=True)
    carry = join_parts(run, CARRY)
    t0 = time.perf_counter()
    reference = set(train_smiles(run / "train_smiles.txt"))
    print(f"{len(reference)} distinct training SMILES ({time.perf_counter() - t0:.0f} s)")

    rows = {}
    for label, entry in samples.items():
        result = metrics.evaluate(_molecules(entry), reference_smiles=reference)
        info = summary["sampling"][label]
        rows[label] = {
            "sampler": entry["kind"], "steps": entry["steps"], "nfe": info["nfe"],
            "n": int(len(entry["n_atoms"])),
            "atom_stability": 100 * result.atom_stability,
            "molecule_stability": 100 * result.molecule_stability,
            "validity": 100 * result.validity,
            "valid_unique": 100 * result.validity * result.uniqueness,
            "uniqueness": 100 * result.uniqueness, "novelty": 100 * result.novelty,
            "gpu_seconds": info["seconds"]}
    training = summary["training"]
    gpu = summary.get("gpu", {}).get("name", "cpu")
    budget = {"hardware": gpu, "minutes_this_run": training["seconds"] / 60,
              "steps_this_run": training["steps_this_run"], "steps": training["steps"],
              "batch_size": training["batch_size"],
              "epochs": training["steps"] * training["batch_size"] / 100_000,
              "steps_per_second": training["steps_per_second"],
              "final_loss": training["final_loss_mean_last_500"]}
    results = _load_results(Path(args.out))
    results.update({
        "protocol": "EDM (Hoogeboom et al. 2022): unconditional QM9, EGNN 9 x 256, polynomial "
                    "schedule, eps-prediction, EMA weights; metrics by molgen.metrics.molecules (EDM's "
                    "bond rule); novelty against the SMILES of EDM's train split",
        "training": budget, "samples": rows, "nll": summary.get("nll"),
        "edm_published": EDM_ROW, "edm_training": EDM_TRAINING, "data_row_published": DATA_ROW,
        "device_run": {k: summary[k] for k in ("gpu", "torch", "wall_seconds", "sampling_probe")
                       if k in summary},
        "checkpoint": {"path": str(carry), "bytes": carry.stat().st_size if carry.exists() else None,
                       "what": "carry checkpoint (molgen.train.carry_checkpoint): the next lease "
                               "continues from it with --resume"}})
    write_json(Path(args.out), results)
    print_metrics(results)
    return 0


def print_metrics(results: dict) -> None:
    tr = results["training"]
    print(f"\nQM9 unconditional generation, EDM protocol.  Training: {tr['hardware']}, this run "
          f"{tr['minutes_this_run']:.1f} min ({tr['steps_this_run']} steps); in all {tr['steps']} "
          f"steps x batch {tr['batch_size']} = {tr['epochs']:.2f} epochs (EDM: {EDM_TRAINING['epochs']} epochs, "
          f"{EDM_TRAINING['steps']:,} steps x 64).")
    head = (f"{'model / sampler':<24}{'NFE':>6}{'N':>6}  {'atom st':>7} {'mol st':>7} "
            f"{'valid':>7} {'V x U':>7} {'novel':>7} {'NLL':>8}")
    print(head + "\n" + "-" * len(head))
    nll = results.get("nll") or {}
    for label, r in results["samples"].items():
        print(f"{'ours ' + label:<24}{r['nfe']:>6}{r['n']:>6}  {_pct(r['atom_stability']):>7} "
              f"{_pct(r['molecule_stability']):>7} {_pct(r['validity']):>7} "
              f"{_pct(r['valid_unique']):>7} {_pct(r['novelty']):>7} {'':>8}")
    if "nll_nats_mean" in nll:
        print(f"{'ours PF-ODE NLL*':<24}{nll['nfe']:>6}{nll['molecules']:>6}  {'':>39} "
              f"{nll['nll_nats_mean']:8.1f}")
    for name, row in (("EDM (published)", EDM_ROW), ("data (published)", DATA_ROW)):
        nll_s = f"{row['nll']:8.1f}" if row["nll"] is not None else f"{'-':>8}"
        print(f"{name:<24}{'1000' if name.startswith('EDM') else '':>6}{'10k':>6}  "
              f"{_pct(row['atom_stability']):>7} {_pct(row['molecule_stability']):>7} "
              f"{_pct(row['validity']):>7} {_pct(row['valid_unique']):>7} {'-':>7} {nll_s}")
    print("* PF-ODE NLL of the continuous packed state, not EDM's variational bound: "
          "not comparable.")


# --------------------------------------------------------------------------- throughput

def _time_calls(fn, calls: int) -> list[float]:
    """Seconds of each of `calls` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def cmd_throughput(args) -> int:
    from molgen.diffusion import diffusion_loss, make_schedule
    from molgen.tasks.qm9 import QM9Task
    from molgen.nn.nequip import NequIP
    from molgen.train import load_config

    cfg = load_config(["experiment=qm9", "device=cpu"])
    task = QM9Task(cfg.task)
    schedule = make_schedule(cfg.diffusion.schedule)
    models = {"egnn": lambda: task.build_model(),
              "nequip": lambda: NequIP(task.num_features)}
    load_start, rows = os.getloadavg(), []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, build in models.items():
            torch.manual_seed(0)
            net = build()
            params = sum(p.numel() for p in net.parameters())
            opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
            for batch in args.batch:
                g = torch.Generator().manual_seed(0)
                data = task.batch(batch, g)
                x0, space = data.x0, data.space
                den = task.denoiser(net, schedule, cfg.diffusion.prediction, space)
                t = torch.full((batch,), 0.5)
                xt = x0 + 0.5 * space.noise(x0, g)
                sizes = torch.bincount(space.index(x0))
                edges = int((sizes * (sizes - 1)).sum())

                def call():
                    with torch.no_grad():
                        den(xt, t)

                def train_step():
                    opt.zero_grad(set_to_none=True)
                    tt = schedule.sample_t(batch, g)
                    loss = diffusion_loss(den, x0, t=tt, noise=space.noise(x0, g),
                                          target=cfg.diffusion.target).mean()
                    loss.backward()
                    opt.step()

                net.eval()
                call_times = _time_calls(call, args.calls)
                net.train()
                step_times = _time_calls(train_step, args.calls)
                # the fastest call: the least disturbed by other processes on a shared CPU
                call_s, step_s = min(call_times), min(step_times)
                row = {"model": name, "parameters": params, "threads": threads, "batch": batch,
                       "atoms": int(len(x0)), "edges": edges, "loadavg_1min": os.getloadavg()[0],
                       "denoiser_call_seconds_all": call_times,
                       "train_step_seconds_all": step_times,
                       "seconds_per_denoiser_call": call_s,
                       "sampling_molecules_per_second_per_nfe": batch / call_s,
                       "sampling_molecules_per_second_50_nfe": batch / (50 * call_s),
                       "sampling_molecules_per_second_1000_nfe": batch / (1000 * call_s),
                       "seconds_per_train_step": step_s,
                       "training_molecules_per_second": batch / step_s}
                rows.append(row)
                print(f"{name:7s} threads {threads} batch {batch:4d}: {1e3 * call_s:8.0f} ms/call "
                      f"({batch / call_s:7.1f} mol/s per NFE, {batch / (50 * call_s):6.2f} mol/s "
                      f"at 50 NFE), train {1e3 * step_s:8.0f} ms/step "
                      f"({batch / step_s:6.1f} mol/s)", flush=True)
    results = _load_results(Path(args.out))
    results["throughput"] = {
        "what": "CPU, float32, real QM9 training molecules (atom counts as drawn); one call: a "
                "denoiser evaluation (no grad) of the whole batch; sampling mol/s at K NFE = "
                "batch / (K x call time); a training step: forward, backward and AdamW of the "
                "eps loss at random times; after one warm-up call, the fastest of the timed "
                "calls (all are kept in *_all); the machine is shared, see loadavg",
        "models": {"egnn": "molgen.nn.egnn.EGNN, experiment=qm9 (hidden 256, 9 layers, fully "
                           "connected)",
                   "nequip": "molgen.nn.nequip.NequIP defaults (32x0e + 8x1o + 8x2e, 3 layers, "
                             "lmax 2, fully connected)"},
        "calls": args.calls, "rows": rows,
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                    "torch": torch.__version__, "cpu_count": os.cpu_count(),
                    "processor": platform.processor(),
                    "loadavg_1_5_15min_start": list(load_start),
                    "loadavg_1_5_15min_end": list(os.getloadavg())}}
    write_json(Path(args.out), results)
    return 0


# --------------------------------------------------------------------------- samplers

def cmd_samplers(args) -> int:
    """Every sampler row on one model, here: the same n molecules (atom counts and x_T from the
    same seed) per row, EDM's metrics; the JSON is rewritten after each row."""
    from molgen.train import load_trained

    trained = load_trained(args.model)
    out = Path(args.out)
    rows = _parse_samplers(args.samplers)
    setting = {"model": str(args.model), "step": trained.step, "n": args.n, "seed": args.seed}
    results = {**setting,
               "config": {key: dataclasses.asdict(getattr(trained.cfg, key))
                          for key in ("task", "diffusion")},
               "threads": torch.get_num_threads(),
               "machine": {"platform": platform.platform(), "torch": torch.__version__,
                           "cpu_count": os.cpu_count(), "loadavg_start": list(os.getloadavg())},
               "rows": earlier_rows(out, setting, [label for label, _ in rows], "row")
                       if args.merge else []}
    for label, sampler in rows:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        metrics = trained.task.evaluate(trained.denoiser, sampler, args.n, seed=args.seed,
                                        progress=True)
        row = {"row": label, "sampler": sampler.to_dict(), "nfe": sampler.steps,
               "cpu_seconds": time.process_time() - cpu0,
               "wall_seconds": time.perf_counter() - wall0,
               **{k: 100 * v for k, v in metrics.items()}}
        results["rows"].append(row)
        results["machine"]["loadavg_end"] = list(os.getloadavg())
        write_json(out, results)
        print(f"{label:>40}: atom stability {row['atom_stability']:.1f}%, molecules "
              f"{row['molecule_stability']:.1f}%, valid {row['validity']:.1f}% "
              f"({row['cpu_seconds']:.0f} CPU-s)", flush=True)
    return 0


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("device", help="train, sample and NLL on the GPU machine")
    d.add_argument("--out", required=True, help="folder for what comes back (the tool's $OUT)")
    d.add_argument("--workdir", default="/tmp/qm9_run", help="the training run's out_dir")
    d.add_argument("--resume", default=None,
                   help=f"a checkpoint to continue (the {CARRY} an earlier lease brought back)")
    d.add_argument("--experiment", default="qm9")
    d.add_argument("--device", default="cuda")
    d.add_argument("--override", action="append", default=[], help="extra hydra override")
    d.add_argument("--budget", type=float, default=520, help="wall seconds for everything")
    d.add_argument("--train-seconds", type=float, default=360, help="at most this much training")
    d.add_argument("--min-train-seconds", type=float, default=60)
    d.add_argument("--slack", type=float, default=15, help="seconds kept free at the end")
    d.add_argument("--checkpoint-every", type=int, default=2000)
    d.add_argument("--samplers", default=DEFAULT_SAMPLERS, help="kind:steps,...")
    d.add_argument("--samples", type=int, default=1000)
    d.add_argument("--min-samples", type=int, default=100)
    d.add_argument("--sample-batch", type=int, default=1000)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--nll-molecules", type=int, default=250, help="0 skips the NLL")
    d.add_argument("--nll-reserve", type=float, default=40, help="seconds kept for the NLL")
    d.add_argument("--nll-tol", type=float, default=1e-5)
    d.add_argument("--tf32", action="store_true", help="TF32 matmuls (EDM: plain fp32)")
    d.set_defaults(func=cmd_device)

    m = sub.add_parser("metrics", help="EDM's metrics of the device run's samples (RDKit)")
    m.add_argument("--run", default="runs/qm9_gpu", help="the device run's files")
    m.add_argument("--out", default=str(DEFAULT_JSON))
    m.set_defaults(func=cmd_metrics)

    r = sub.add_parser("samplers", help="sampler rows on one model, here (CPU)")
    r.add_argument("--model", required=True, help="a checkpoint or exported model of experiment=qm9")
    r.add_argument("--samplers", default="ddpm:1000,dpmpp_2m:20:spacing=logsnr,dpmpp_2m:50:spacing=logsnr",
                   help="kind:steps[:setting=value...],... (SamplerConfig.from_spec)")
    r.add_argument("-n", type=int, default=250, help="molecules per row")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", required=True)
    r.add_argument("--merge", action="store_true",
                   help="keep the rows of an existing --out of the same model, step, n and seed, "
                        "replacing those run again")
    r.set_defaults(func=cmd_samplers)

    t = sub.add_parser("throughput", help="CPU throughput of the EGNN and the e3nn denoiser")
    t.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    t.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    t.add_argument("--calls", type=int, default=3, help="timed calls after one warm-up")
    t.add_argument("--out", default=str(DEFAULT_JSON))
    t.set_defaults(func=cmd_throughput)

    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
