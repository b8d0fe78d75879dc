import torch

# The tests' tensors are small: one thread is as fast and keeps timings steady when
# other work shares the two cores.
torch.set_num_threads(1)
