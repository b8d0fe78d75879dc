"""The `molgen` command: help, demo, train → sample, and one-line errors for bad input."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from molgen.cli import main
from molgen.train import CONFIG_DIR

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"



def run(capsys, *args) -> tuple[int, str, str]:
    """main(args) in this process → (exit status, stdout, stderr), argparse exits included."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_entry_point_help():
    script = Path(sys.executable).with_name("molgen")
    if not script.exists():
        pytest.skip("the molgen console script is not installed next to this python")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert all(command in result.stdout for command in ("demo", "train", "sample"))


def test_version_is_the_distributions(capsys):
    import tomllib
    from importlib.metadata import version

    code, out, _ = run(capsys, "--version")
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert code == 0 and out == f"molgen {version('molgen')}\n"
    assert version("molgen") == project["project"]["version"]  # reinstall after a bump


@pytest.mark.parametrize("command", ["demo", "train", "sample"])
def test_subcommand_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and out.startswith(f"usage: molgen {command}")


def test_demo_writes_png(capsys, tmp_path):
    png = tmp_path / "demo.png"
    code, out, err = run(capsys, "demo", "-o", png)
    assert code == 0, err
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert len(out.splitlines()) == 1 and "sliced W1" in out and "dpmpp_2m 20 steps" in out


def test_train_then_sample_uses_the_stored_sampler(capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", "steps=20", f"out_dir={out_dir}", "progress=false",
                         "task.hidden=32", "batch_size=64", "eval_samples=100",
                         "sampler.kind=heun", "sampler.steps=4")
    assert code == 0, err
    assert "train: step 20" in out and (out_dir / "checkpoint.pt").exists()

    stored = tmp_path / "stored.png"
    code, out, err = run(capsys, "sample", "--checkpoint", out_dir / "checkpoint.pt",
                         "-n", 100, "-o", stored)
    assert code == 0, err
    assert "heun 4 steps" in out and stored.read_bytes().startswith(PNG_MAGIC)

    code, out, err = run(capsys, "sample", "--checkpoint", out_dir / "checkpoint.pt",
                         "-n", 100, "--sampler", "ddim", "--steps", 3, "--spacing", "logsnr",
                         "-o", tmp_path / "d.png")
    assert code == 0, err
    assert "ddim 3 steps (logsnr)" in out


def test_show_config(capsys):
    code, out, _ = run(capsys, "train", "--show-config", "steps=7")
    assert code == 0 and "steps: 7" in out and "sampler:" in out


@pytest.mark.parametrize("args, message", [
    ([], "required: COMMAND"),
    (["train", "foo=1"], "unknown config key 'foo'"),
    (["train", "steps=abc"], "'steps'"),
    (["train", "task=nope"], "task/nope"),
    (["train", "sampler.kind=nope"], "unknown sampler 'nope'"),
    (["demo", "--sampler", "nope"], "unknown sampler 'nope'"),
    (["demo", "--steps", "0"], "steps must be >= 1"),
    (["demo", "--steps", "x"], "invalid int value"),
    (["demo", "-o", "demo.jpg"], "-o demo.jpg: the output is a PNG image, so its name must end in .png"),
    (["backbones", "-o", "chains.cif"], "must end in .pdb"),
    (["dock", "--protein", "rec.pdb", "--ligand", "CCO", "-o", "poses.mol2"], "must end in .sdf"),
    (["backbones", "-o", "no/dir/chains.pdb"], "-o no/dir/chains.pdb: folder"),
    (["sample", "--checkpoint", "no/such.pt"], "no/such.pt"),
    (["sample", "--checkpoint", "{not_a_checkpoint}"], "is not a molgen checkpoint"),
    (["sample", "--checkpoint", "{plain_state_dict}"], "it lacks step, model"),
])
def test_bad_input_is_one_line_error_with_status_2(capsys, tmp_path, args, message):
    files = {"not_a_checkpoint": tmp_path / "notes.txt", "plain_state_dict": tmp_path / "w.pt"}
    files["not_a_checkpoint"].write_text("hello")
    torch.save({"weight": torch.ones(2)}, files["plain_state_dict"])
    code, out, err = run(capsys, *(a.format(**files) for a in args))
    assert code == 2
    assert err.startswith("molgen: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_bad_override_from_the_real_command_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "molgen.cli", "train", "foo=1"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "molgen: error: unknown config key 'foo' (`molgen train --show-config` lists the keys)"]


def test_configs_ship_inside_the_package():
    """The yaml configs live in molgen/configs (package data); top-level configs/ links there."""
    assert (CONFIG_DIR / "train.yaml").exists() and (CONFIG_DIR / "task" / "toy2d.yaml").exists()
    top = Path(__file__).resolve().parents[1] / "configs"
    if top.exists():
        assert top.resolve() == CONFIG_DIR.resolve()
