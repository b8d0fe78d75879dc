"""molgen: diffusion generative models for molecules and proteins."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("molgen")
    """The installed distribution's version (pyproject.toml's), as `molgen --version` prints it."""
except PackageNotFoundError:  # the source tree on sys.path, not installed
    __version__ = "0+unknown"
del PackageNotFoundError, version
