"""Training utilities: config, EMA, optimizer, checkpoints, exact resume, gradient accumulation,
DDP equivalence, and a small MLP that learns the 2-D ring mixture."""
from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from torch import nn

from molgen.diffusion import SamplerConfig
from molgen.metrics.stats import mmd_rbf
from molgen.tasks.toy import Toy2dConfig
from molgen.data.toy import mixture_2d
from molgen.train import (CHECKPOINT, CONFIG_DIR, EMA, LOG, TASKS, ConfigError, Trainer, build_schedule,
                          carry_checkpoint, config_from_dict, load_checkpoint, load_config, make_optimizer, read_log,
                          rng_state, save_checkpoint, set_rng_state, step_generator, train,
                          TrainingDiverged)
from molgen.train.checkpoint import RESUME_KEYS

# a small, fast configuration for everything but the quality test
SMALL = ["progress=false", "task.hidden=32", "task.layers=2", "batch_size=64",
         "eval_samples=200", "sampler.steps=5"]



def small_cfg(out_dir, *overrides):
    return load_config([*SMALL, f"out_dir={out_dir}", *overrides])


def losses(out_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_log(out_dir / LOG)}


# -- config --------------------------------------------------------------------------------

def test_default_config_is_typed_and_complete():
    cfg = load_config()
    assert isinstance(cfg.task, Toy2dConfig) and isinstance(cfg.sampler, SamplerConfig)
    assert isinstance(cfg.optim.lr, float) and isinstance(cfg.steps, int)
    # a sampler's own settings and a schedule's parameters are added with a '+'
    assert load_config(["+sampler.options.eta=0.5", "sampler.kind=ddim"]).sampler.options == {"eta": 0.5}
    assert build_schedule(load_config(["+diffusion.schedule_params.T=500"]).diffusion).T == 500
    assert config_from_dict(dataclasses.asdict(cfg)) == cfg


@pytest.mark.parametrize("override, message", [
    ("foo=1", "unknown config key 'foo'"),
    ("+foo=1", "unknown config key 'foo'"),
    ("task.hiden=3", "unknown config key 'task.hiden'"),
    ("steps=abc", "config key 'steps'"),
    ("task=bogus", "toy2d"),
    ("steps", "steps"),
    ("sampler.kind=zzz", "unknown sampler 'zzz'"),
    ("sampler.spacing=even", "unknown timestep spacing 'even'"),
    ("sampler.steps=5000", "steps must be in 1..1000"),
    ("diffusion.weighting=snr", "unknown loss weighting 'snr'"),
    ("accum=0", "accum must be >= 1"),
    ("sampler.options.eta=1", "add it with a '+', as +sampler.options.eta=VALUE"),
    ("+sampler.options.eta=x", "sampler 'dpmpp_2m' has no option eta; its options: lower_order_final"),
    ("+diffusion.schedule_params.TT=5", "the cosine schedule has no parameter TT"),
])
def test_bad_overrides_raise_one_line_config_errors(override, message):
    with pytest.raises(ConfigError) as info:
        load_config([override])
    assert message in str(info.value) and "\n" not in str(info.value)


# -- EMA, optimizer, randomness ------------------------------------------------------------

def test_ema_warmup_formula_constant_parameters_and_swap():
    model = nn.Linear(1, 1, bias=False)
    ema = EMA(model, decay=0.9)
    assert [ema.decay_at(n) for n in (0, 1, 10, 1000)] == [0.1, 2 / 11, 0.55, 0.9]
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.shadow["weight"].fill_(3.0)
    for _ in range(50):  # a parameter that does not change averages to itself, exactly
        ema.update()
    assert ema.shadow["weight"].item() == 3.0

    expected = 3.0
    for n, value in enumerate([5.0, -1.0, 2.0], start=50):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update()
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
        assert ema.shadow["weight"].item() == pytest.approx(expected, rel=1e-6)

    with ema.swapped():
        assert model.weight.item() == pytest.approx(expected, rel=1e-6)
    assert model.weight.item() == 2.0

    restored = EMA(nn.Linear(1, 1, bias=False), decay=0.9)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == ema.updates == 53
    assert restored.shadow["weight"].item() == ema.shadow["weight"].item()


def test_learning_rate_warms_up_linearly():
    cfg = load_config(["optim.lr=1e-2", "optim.warmup_steps=4"]).optim
    model = nn.Linear(2, 2)
    opt, sched = make_optimizer(model, cfg)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2, 1e-2])


def test_step_generator_depends_only_on_seed_and_step():
    draw = lambda seed, step: torch.rand(4, generator=step_generator(seed, step))
    assert torch.equal(draw(0, 5), draw(0, 5))
    assert not torch.equal(draw(0, 5), draw(0, 6))
    assert not torch.equal(draw(0, 5), draw(1, 5))


def test_rng_state_survives_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1), random.seed(2), np.random.seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    save_checkpoint({"rng": rng_state(torch.device("cpu"))}, tmp_path / "rng.pt")
    expected = torch.rand(3), random.random(), np.random.normal()
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"], torch.device("cpu"))
    assert (torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]
            and np.random.normal() == expected[2])


# -- checkpoints -----------------------------------------------------------------------------

def test_checkpoint_contents_load_with_weights_only(tmp_path):
    cfg = small_cfg(tmp_path, "steps=3", "sampler.kind=ddim", "sampler.steps=7")
    train(cfg)
    ckpt = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert ckpt["step"] == 3 and ckpt["ema"]["updates"] == 3
    assert ckpt["sampler"] == SamplerConfig(kind="ddim", steps=7).to_dict()
    assert ckpt["config"] == dataclasses.asdict(cfg)
    assert ckpt["scheduler"]["last_epoch"] == 3 and len(ckpt["optimizer"]["state"]) > 0
    assert set(ckpt["rng"][0]) == {"torch", "python", "numpy"}
    assert sorted(losses(tmp_path)) == [1, 2, 3]
    for name in ("loss.png", "samples.png", "eval.json", "config.yaml"):
        assert (tmp_path / name).stat().st_size > 0


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"w": torch.ones(3)}, path)

    with pytest.raises(Exception):  # fails while pickling, after part of the file is written
        save_checkpoint({"w": torch.zeros(10_000), "bad": lambda: None}, path)

    def crash(*args):
        raise OSError("disk vanished")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):  # fails after the new file is complete, before the rename
        save_checkpoint({"w": torch.zeros(3)}, path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))


KILL_AT = textwrap.dedent("""
    import os, signal, sys
    from molgen import train as training
    from molgen.cli import main
    step = training.Trainer.train_step
    def train_step(self, n):
        if n == {kill}:
            os.kill(os.getpid(), signal.SIGKILL)
        return step(self, n)
    training.Trainer.train_step = train_step
    sys.exit(main(sys.argv[1:]))
""")


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    from molgen.cli import main

    # from the command line: non-finite from step 2, one line, exit 1, nothing saved
    code = main(["train", *SMALL, "steps=60", "checkpoint_every=20", "optim.lr=1e6",
                 f"out_dir={tmp_path / 'cli'}"])
    err = capsys.readouterr().err
    assert code == 1 and "training diverged at step" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "cli" / CHECKPOINT).exists()
    # a run that diverges after a checkpoint leaves that checkpoint as it was
    trainer = Trainer(small_cfg(tmp_path / "run", "steps=6", "checkpoint_every=2"))
    step = trainer.train_step
    trainer.train_step = lambda n: {**step(n), "loss": float("nan")} if n == 3 else step(n)
    with pytest.raises(TrainingDiverged, match="still holds step 2"):
        trainer.train()
    ckpt = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert ckpt["step"] == 2 and all(bool(v.isfinite().all()) for v in ckpt["model"].values())


@pytest.mark.parametrize("override, message", [
    ("ema_decay=2", r"ema_decay must be in \[0, 1\], got 2.0"), ("optim.lr=0", "optim.lr must be a finite"),
    ("optim.lr=inf", "optim.lr must be a finite"), ("optim.grad_clip=-1", "optim.grad_clip"),
    ("diffusion.min_snr_gamma=-1", "min_snr_gamma"), ("optim.warmup_steps=-5", "warmup_steps"),
    ("task.hidden=0", "task.hidden must be >= 1"), ("task.layers=-3", "task.layers must be >= 1"),
    ("out_dir=", "out_dir must not be empty"),
])
def test_out_of_range_settings_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config([override])


def test_resume_refuses_changed_training_settings(tmp_path):
    args = [*SMALL, f"out_dir={tmp_path}", "checkpoint_every=2"]
    train(load_config([*args, "steps=2"]))
    with pytest.raises(ConfigError, match=r"optim.lr: 0.001 → 0.05"):
        train(load_config([*args, "steps=4", "optim.lr=0.05"]))
    train(load_config([*args, "steps=4", "sampler.steps=5", "eval_samples=8"]))  # may change
    assert load_checkpoint(tmp_path / CHECKPOINT)["step"] == 4


def test_killed_run_resumes_exactly(tmp_path):
    """Uninterrupted 40 steps == 40 steps SIGKILLed at step 27 (checkpoint at 20) and resumed."""
    check_killed_run_resumes_exactly(tmp_path, SMALL, steps=40, every=10, kill=27)


def test_carry_checkpoint_continues_the_run_with_a_warm_restart(tmp_path):
    """A carry checkpoint: a quarter of the size, the same step, weights within bfloat16's
    rounding; training resumed from it continues at that step (fresh optimizer, warmed up
    again) and stays close to the uninterrupted run."""
    args = [*SMALL, "steps=30", "checkpoint_every=15", "optim.warmup_steps=5"]
    train(load_config([*args, f"out_dir={tmp_path / 'ref'}"]))
    train(load_config([*args, "steps=15", f"out_dir={tmp_path / 'a'}"]))
    carry = tmp_path / "b" / CHECKPOINT
    carry_checkpoint(tmp_path / "a" / CHECKPOINT, carry)
    full, small = load_checkpoint(tmp_path / "a" / CHECKPOINT), load_checkpoint(carry, RESUME_KEYS)
    assert "optimizer" not in small and small["step"] == 15 and small["warm_restart"] is True
    nbytes = lambda ckpt: sum(v.numel() * v.element_size() for part in (ckpt["model"], ckpt["ema"]["shadow"])
                              for v in part.values())
    assert nbytes(small) <= 0.51 * nbytes(full)  # and no optimizer moments: a quarter of the tensors
    for key, value in full["model"].items():
        if value.is_floating_point():
            assert small["model"][key].dtype == torch.bfloat16
            assert torch.allclose(small["model"][key].float(), value, rtol=2 ** -8, atol=0)

    resumed = subprocess.run([sys.executable, "-m", "molgen.cli", "train", *args, f"out_dir={tmp_path / 'b'}"],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "at step 15 with a fresh optimizer" in resumed.stderr
    log = read_log(tmp_path / "b" / LOG)
    assert [r["step"] for r in log] == list(range(16, 31))
    assert [r["lr"] for r in log[:5]] == pytest.approx([1e-3 * k / 5 for k in range(1, 6)])  # warm-up again
    ref, got = losses(tmp_path / "ref"), losses(tmp_path / "b")
    assert max(abs(ref[s] - got[s]) / ref[s] for s in range(16, 31)) < 0.5  # the same data, close weights
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT)["step"] == 30  # a full checkpoint again


def test_init_fine_tunes_an_exported_model_with_other_settings(tmp_path):
    """init= starts a new run from a model's EMA weights at its step, with settings of its own
    (here a batch size and learning rate); a network of another shape is a one-line error."""
    from molgen.train import export_model, load_trained

    train(load_config([*SMALL, "steps=10", f"out_dir={tmp_path / 'a'}"]))
    export_model(tmp_path / "a" / CHECKPOINT, tmp_path / "model.pt")
    start = load_trained(tmp_path / "model.pt").model.state_dict()
    cfg = load_config([*SMALL, "steps=10", "batch_size=32", "optim.lr=3e-4", f"init={tmp_path / 'model.pt'}",
                       f"out_dir={tmp_path / 'b'}"])
    trainer = Trainer(cfg)
    assert trainer.step == 10 and trainer.ema.updates == 10
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, start[key]) and torch.equal(trainer.ema.shadow[key], start[key])
    train(dataclasses.replace(cfg, steps=14))
    assert [r["step"] for r in read_log(tmp_path / "b" / LOG)] == [11, 12, 13, 14]
    with pytest.raises(ConfigError, match="holds another model than this config builds"):
        Trainer(load_config([*SMALL, "task.hidden=16", f"init={tmp_path / 'model.pt'}",
                             f"out_dir={tmp_path / 'c'}"]))


def check_killed_run_resumes_exactly(tmp_path, args, steps: int, every: int, kill: int):
    """Train `args` for `steps` uninterrupted, and again SIGKILLed at step `kill` (after the
    checkpoint at the last multiple of `every`) and resumed: the logs and weights agree."""
    args = [*args, f"steps={steps}", f"checkpoint_every={every}"]
    saved = kill - 1 - (kill - 1) % every
    train(load_config([*args, f"out_dir={tmp_path / 'ref'}"]))
    run = [f"out_dir={tmp_path / 'run'}", *args]

    killed = subprocess.run([sys.executable, "-c", KILL_AT.format(kill=kill), "train", *run],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT)["step"] == saved
    assert max(losses(tmp_path / "run")) == kill - 1  # logged past the checkpoint before dying

    resumed = subprocess.run([sys.executable, "-m", "molgen.cli", "train", *run],
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and f"at step {saved}" in resumed.stderr

    assert [r["step"] for r in read_log(tmp_path / "run" / LOG)] == list(range(1, steps + 1))
    ref, got = losses(tmp_path / "ref"), losses(tmp_path / "run")
    assert max(abs(ref[s] - got[s]) for s in range(saved + 1, steps + 1)) <= 1e-7
    ref_model = load_checkpoint(tmp_path / "ref" / CHECKPOINT)["model"]
    run_model = load_checkpoint(tmp_path / "run" / CHECKPOINT)["model"]
    assert all(torch.allclose(ref_model[k], run_model[k], rtol=0, atol=1e-7) for k in ref_model)


# -- batching: accumulation and DDP --------------------------------------------------------------

def test_gradient_accumulation_matches_full_batch(tmp_path):
    results = []
    for accum in (1, 2, 4):
        trainer = Trainer(small_cfg(tmp_path / str(accum), f"accum={accum}", "resume=false"))
        record = trainer.train_step(1)
        grads = [p.grad.clone() for p in trainer.model.parameters()]
        results.append((record["loss"], grads, [p.detach().clone() for p in trainer.model.parameters()]))
    (loss1, grads1, params1), *others = results
    for loss, grads, params in others:
        assert loss == pytest.approx(loss1, abs=1e-6)
        assert all(torch.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(grads, grads1))
        assert all(torch.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(params, params1))


def test_ddp_two_ranks_match_one_process(tmp_path):
    check_ddp_matches_one_process(tmp_path, SMALL)


def check_ddp_matches_one_process(tmp_path, args, atol: float = 1e-5):
    """5 steps of `args` on 2 gloo ranks under torchrun equal 5 steps in one process: the
    same files, losses and weights."""
    args = [*args, "steps=5", "checkpoint_every=100"]
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "molgen.cli", "train", f"out_dir={tmp_path / 'ddp'}", *args],
        capture_output=True, text=True, timeout=180)
    assert ddp.returncode == 0, ddp.stderr[-20000:]
    assert ddp.stdout.count("train: step 5") == 1  # only rank 0 reports
    train(load_config([*args, f"out_dir={tmp_path / 'one'}"]))

    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir())
    one, two = losses(tmp_path / "one"), losses(tmp_path / "ddp")
    assert sorted(two) == [1, 2, 3, 4, 5]
    assert max(abs(one[s] - two[s]) for s in one) <= atol
    ckpt_one = load_checkpoint(tmp_path / "one" / CHECKPOINT)
    ckpt_two = load_checkpoint(tmp_path / "ddp" / CHECKPOINT)
    assert len(ckpt_two["rng"]) == 2
    for key, value in ckpt_one["model"].items():
        assert torch.allclose(value, ckpt_two["model"][key], rtol=0, atol=atol)


# -- learning ----------------------------------------------------------------------------------

def test_small_mlp_learns_the_ring_mixture(tmp_path):
    """A small MLP trained for well under a minute samples the ring (DPM-Solver++ 20 steps)
    with an MMD at least 10x below that of N(0, I)."""
    cfg = load_config(["progress=false", f"out_dir={tmp_path}", "steps=1000", "batch_size=512",
                       "ema_decay=0.99", "eval_samples=2000"])
    start = time.perf_counter()
    metrics = train(cfg)
    seconds = time.perf_counter() - start

    g = torch.Generator().manual_seed(1)
    gaussian = mmd_rbf(torch.randn(2000, 2, generator=g), mixture_2d("ring").sample(2000, g))
    print(f"\ntrained {cfg.steps} steps in {seconds:.1f} s: MMD {metrics['mmd']:.2e}, "
          f"N(0, I) {gaussian:.2e} ({gaussian / metrics['mmd']:.0f}x)")
    assert metrics["mmd"] * 10 <= gaussian


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")))
def test_every_shipped_experiment_composes_and_validates(experiment):
    cfg = load_config([f"experiment={experiment}"])
    assert cfg.steps > 0 and cfg.task.name in TASKS
