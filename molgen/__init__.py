"""molgen: diffusion generative models for molecules and proteins."""
__version__ = "0.1.0"
