import os

import pytest
import torch

# The tests' tensors are small: one thread is as fast and keeps timings steady when other
# work shares the two cores.  Subprocesses (CLI, torchrun) inherit OMP_NUM_THREADS.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A parsed-QM9 cache shared by the QM9 tests of a module, their process and its training
    subprocesses, so qm9pack is parsed once per session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOLGEN_CACHE", str(tmp_path_factory.getbasetemp() / "molgen-cache"))
        yield
