"""The image U-Net (molgen.nn.unet) and the image task: shapes, conditioning, gradients, and the
digits_tiny experiment through training, exact resume and `molgen sample`."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from PIL import Image

from molgen.cli import main
from molgen.train import CHECKPOINT, Trainer, load_checkpoint, load_config, train
from molgen.nn.unet import UNet, group_norm
from test_training import check_killed_run_resumes_exactly

TINY = ["experiment=digits_tiny", "progress=false"]
SMALL = dict(channels=16, heads=2, dropout=0.0)


def randomized(model: UNet) -> UNet:
    """The model with its zero-initialised layers made random, so that every input matters
    (a fresh U-Net outputs exactly 0)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0, 0.1)
    return model


def inputs(b: int, c: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, size, size, generator=g), torch.rand(b, generator=g)


@pytest.mark.parametrize("c, size, mult, attention, classes", [
    (1, 8, (1, 2), 0, 0),          # no attention
    (1, 8, (1, 2), 4, 10),         # attention at 4x4 and in the middle, conditional
    (3, 16, (1, 2, 2), 16, 0),     # attention at every level
    (1, 28, (1, 2, 2), 7, 10),     # odd sizes on the way down and up (28 → 14 → 7)
])
def test_output_has_the_input_shape_and_starts_at_zero(c, size, mult, attention, classes):
    model = UNet(c, size, channel_mult=mult, blocks=1, attention_resolution=attention,
                 num_classes=classes, **SMALL)
    has_attention = any(b.attn is not None for b in model.modules() if hasattr(b, "attn"))
    assert has_attention == bool(attention)
    x, t = inputs(3, c, size)
    cond = torch.tensor([0, classes, 1]) if classes else None
    out = model(x, t, cond)
    assert out.shape == x.shape and not out.any()  # the zero-initialised output conv
    assert randomized(model)(x, t, cond).shape == x.shape


def test_group_norm_uses_32_groups_where_the_width_allows():
    assert [group_norm(c).num_groups for c in (8, 16, 48, 64, 256)] == [8, 16, 16, 32, 32]


def test_time_and_class_change_the_output_and_the_null_class_is_a_class():
    model = randomized(UNet(1, 8, channel_mult=(1, 2), blocks=1, attention_resolution=4,
                            num_classes=10, **SMALL)).eval()
    x, _ = inputs(2, 1, 8)
    t = torch.full((2,), 0.3)
    base = model(x, t, torch.tensor([3, 3]))
    assert not torch.allclose(base, model(x, t + 0.4, torch.tensor([3, 3])), atol=1e-4)
    null = model(x, t, torch.tensor([10, 10]))  # index num_classes: the guidance null class
    assert not torch.allclose(base, null, atol=1e-4)
    with pytest.raises(IndexError):
        model(x, t, torch.tensor([11, 11]))
    with pytest.raises(ValueError, match="without a condition"):
        UNet(1, 8, channel_mult=(1, 2), blocks=1, **SMALL)(x, t, torch.tensor([1, 1]))


def test_gradients_reach_every_parameter():
    model = UNet(1, 8, channel_mult=(1, 2), blocks=1, attention_resolution=4, num_classes=10,
                 **SMALL)
    x, t = inputs(11, 1, 8)
    cond = torch.arange(11)  # every class and the null class
    model(x, t, cond).sub(x).square().mean().backward()  # fresh: the output conv learns first
    assert model.out[-1].weight.grad.abs().sum() > 0
    model.zero_grad()
    randomized(model)(x, t, cond).sub(x).square().mean().backward()
    silent = [name for name, p in model.named_parameters() if not p.grad.abs().sum() > 0]
    assert silent == []


# -- the image task ----------------------------------------------------------------------------
# digits_tiny trains on scikit-learn's 8×8 digits (the `images` extra)
needs_digits = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                  reason="scikit-learn absent (pip install -e '.[images]')")


@needs_digits
def test_labels_travel_with_micro_batches(tmp_path):
    """Gradient accumulation over 2 micro-batches equals the full batch: each micro-batch
    holds its own slice of the labels (Batch.subset)."""
    grads = []
    for accum in (1, 2):
        trainer = Trainer(load_config([*TINY, f"out_dir={tmp_path / str(accum)}",
                                       f"accum={accum}", "resume=false"]))
        batch = trainer.task.batch(32, torch.Generator().manual_seed(0))
        x0, labels = batch.x0, batch.cond
        assert labels.shape == (32,) and torch.equal(batch.subset(8, 16)[0].cond, labels[8:16])
        assert x0.shape == (32, 1, 8, 8) and x0.min() >= -1 and x0.max() <= 1
        trainer.train_step(1)
        grads.append([p.grad.clone() for p in trainer.model.parameters()])
    assert all(torch.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(*grads))


@needs_digits
def test_digits_tiny_run_resumes_exactly(tmp_path):
    check_killed_run_resumes_exactly(tmp_path, TINY, steps=8, every=3, kill=5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    pytest.importorskip("sklearn", reason="scikit-learn absent (pip install -e '.[images]')")
    out = tmp_path_factory.mktemp("digits_tiny")
    metrics = train(load_config([*TINY, f"out_dir={out}", "steps=6", "checkpoint_every=3",
                                 "preview_samples=4"]))
    assert set(metrics) == {"step", "pixel_mean", "pixel_std", "clipped"}
    assert sorted(p.name for p in (out / "previews").iterdir()) == [
        "step_0000003.png", "step_0000006.png"]
    return out / CHECKPOINT


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_checkpoint_keeps_the_image_shape(checkpoint):
    assert load_checkpoint(checkpoint)["task"]["shape"].tolist() == [1, 8, 8]
    # 20 eval samples, one class per column: 10 x 2 tiles of 8·4 pixels, 2 apart
    assert png_size(checkpoint.parent / "samples.png") == (2 + 10 * 34, 2 + 2 * 34)


@pytest.mark.parametrize("args, size", [
    ([], (2 + 10 * 34, 2 + 2 * 34)),                           # classes 0..9, 0, 1
    (["--class", 3, "--guidance", 2, "--steps", 2], (2 + 4 * 34, 2 + 3 * 34)),  # a 4 x 3 grid
])
def test_sample_writes_a_png_grid(capsys, tmp_path, checkpoint, args, size):
    png = tmp_path / "grid.png"
    code = main([str(a) for a in ["sample", "--checkpoint", checkpoint, "-n", 12, "-o", png,
                                  *args]])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "12 samples" in out and "pixel std" in out
    assert png_size(png) == size


@pytest.mark.parametrize("args, message", [
    (["--class", 10], "class 10 is not one of the model's 0..9"),
    (["--atoms", 5], "--atoms does not apply to a checkpoint of the 'images' task"),
])
def test_bad_image_sample_input_is_one_line_error(capsys, tmp_path, checkpoint, args, message):
    code = main([str(a) for a in ["sample", "--checkpoint", checkpoint, "-n", 2,
                                  "-o", tmp_path / "x.png", *args]])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.splitlines()) == 1
