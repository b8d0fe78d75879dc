"""Every registered task implements the Task contract (molgen.train.task) in full, and the
trainer reaches the tasks by name only."""
from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import pytest

from molgen.train import TASKS, task_class
from molgen.train.task import Task

COMMON = {"seed", "path", "device", "progress"}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_registered_task_implements_the_protocol(name):
    cls = task_class(name)
    assert dataclasses.is_dataclass(cls.Config) and "name" in {f.name for f in dataclasses.fields(cls.Config)}
    assert cls.samples_file.endswith((".png", ".sdf", ".pdb")) and isinstance(cls.options, tuple)
    for method in ("build_model", "batch", "denoiser", "evaluate", "state_dict", "load_state_dict"):
        got = inspect.signature(getattr(cls, method))
        want = inspect.signature(getattr(Task, method))
        positional = [p.name for p in got.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert positional == [p.name for p in want.parameters.values()
                              if p.kind is p.POSITIONAL_OR_KEYWORD], (name, method)
    keyword = {p.name for p in inspect.signature(cls.evaluate).parameters.values()
               if p.kind is p.KEYWORD_ONLY}
    # evaluate takes the common keywords and exactly the options the task declares
    assert keyword == COMMON | set(cls.options), name


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown task 'bogus'; choose one of"):
        task_class("bogus")


def test_the_trainer_imports_no_task():
    """molgen.train knows tasks by name: importing it loads neither a task nor RDKit."""
    code = ("import sys, molgen.train; "
            "print(sorted(m for m in sys.modules if m.startswith(('molgen.tasks', 'molgen.conformers', 'rdkit'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
