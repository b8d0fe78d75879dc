"""Packaging as a user meets it: a wheel built from the checkout holds what the package
needs at run time (configs, shipped weights, py.typed, the licence), installs into a fresh
virtual environment, and runs `molgen --version` and the main command from there."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def run(*args, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, (f"{' '.join(map(str, args))} exited {result.returncode}\n"
                                    f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of the checkout, built with this environment's setuptools (no download)."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "--wheel-dir", out, ROOT, cwd=out)
    wheels = list(out.glob("molgen-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_holds_the_runtime_files(wheel):
    assert wheel.name.startswith(f"molgen-{VERSION}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("molgen/py.typed", "molgen/configs/train.yaml", "molgen/configs/experiment/qm9.yaml",
                 "molgen/conformers/weights/default.pt", "molgen/proteins/weights/default.pt",
                 "molgen/docking/weights/default.pt"):
        assert name in names, name
    assert any(n.startswith(f"molgen-{VERSION}.dist-info/") and n.endswith("LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "docs/", "benchmarks/")) for n in names)


def test_wheel_installs_into_a_fresh_venv_and_runs(wheel, tmp_path):
    """The venv sees this environment's packages (torch, RDKit, ...: nothing is downloaded)
    but molgen only from the wheel."""
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel,
        cwd=tmp_path)
    # --system-site-packages reaches the base interpreter's packages; when this environment is
    # itself a venv, its own site-packages are added after the fresh one's (a path line in a
    # .pth file: the editable install's finder of this checkout is not loaded from there)
    here = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    fresh = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path)
    (Path(fresh.stdout.strip()) / "outer_environment.pth").write_text("\n".join(sorted(here)) + "\n")

    where = run(python, "-c", "import molgen; print(molgen.__file__)", cwd=tmp_path).stdout.strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), where
    assert run(venv / "bin" / "molgen", "--version", cwd=tmp_path).stdout == f"molgen {VERSION}\n"

    run(venv / "bin" / "molgen", "conformers", "CCO", "-n", "2", "-o", "x.sdf", cwd=tmp_path)
    records = (tmp_path / "x.sdf").read_text().count("$$$$")
    assert records == 2
