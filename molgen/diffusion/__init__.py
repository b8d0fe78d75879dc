"""The general diffusion core: schedules, spaces, parameterizations, losses, samplers,
guidance, likelihood and batched sampling.  Nothing here assumes images; the graph spaces
(molecules as rows of atoms) are geometry, not chemistry."""
from .batched import sample_in_batches
from .denoiser import (PREDICTIONS, CFGDenoiser, ClassifierGuidedDenoiser, CountingDenoiser, Denoiser,
                       DenoiserWrapper, convert,
                       drop_condition, from_x0_eps, graph_denoiser, to_x0_eps)
from .likelihood import log_likelihood
from .losses import diffusion_loss, loss_weight
from .process import q_posterior, q_sample
from .grids import GRIDS, make_grid
from .samplers import (SAMPLERS, SamplerConfig, sampler_options, ddim, ddim_invert, ddpm, dpmpp_2m, dpmpp_2m_sde,
                       dpmpp_3m, euler, heun, rk45_sampler, sample, sde)
from .schedules import (CosineSchedule, DiscreteSchedule, LinearSchedule, NoiseSchedule,
                        PolynomialSchedule, VPSDESchedule, make_schedule)
from .spaces import EUCLIDEAN, EuclideanSpace, GraphSpace, MoleculeSpace, ZeroMeanSpace

__all__ = [
    "PREDICTIONS", "CFGDenoiser", "ClassifierGuidedDenoiser", "CountingDenoiser", "Denoiser",
    "DenoiserWrapper", "convert",
    "drop_condition", "from_x0_eps", "graph_denoiser", "to_x0_eps", "sample_in_batches", "log_likelihood", "diffusion_loss",
    "loss_weight", "q_posterior", "q_sample", "GRIDS", "make_grid", "SAMPLERS", "SamplerConfig", "sampler_options",
    "ddim", "ddim_invert", "ddpm", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m", "euler", "heun", "rk45_sampler", "sample", "sde", "CosineSchedule",
    "DiscreteSchedule", "LinearSchedule", "NoiseSchedule", "PolynomialSchedule",
    "VPSDESchedule", "make_schedule", "EUCLIDEAN", "EuclideanSpace", "GraphSpace", "MoleculeSpace",
    "ZeroMeanSpace",
]
