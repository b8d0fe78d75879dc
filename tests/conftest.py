import os

import torch

# The tests' tensors are small: one thread is as fast and keeps timings steady when other
# work shares the two cores.  Subprocesses (CLI, torchrun) inherit OMP_NUM_THREADS.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"
