"""Image readers: shapes, value ranges and label counts of each source, and the parsers of the
official MNIST idx / CIFAR-10 tarball formats on small inline files (downloads never run)."""
import gzip
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from molgen.data import images


def _skip_unless_package(package, relative):
    try:
        images.package_file(package, relative)
    except (ModuleNotFoundError, FileNotFoundError) as err:
        pytest.skip(str(err))


def _check_range(x):
    assert x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 1.0


def test_mnist_splits_shapes_and_labels():
    _skip_unless_package("mnist", "data/mnist.pkl.gz")
    x, y = images.load_mnist("test")
    assert x.shape == (10000, 1, 32, 32) and y.shape == (10000,) and y.dtype == torch.long
    _check_range(x)
    assert (x[..., :2, :] == -1).all() and (x[..., :, -2:] == -1).all()  # the padding border
    assert y.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # values are exact 8-bit levels u / 127.5 - 1
    u = (x + 1) * 127.5
    assert torch.allclose(u, u.round(), atol=1e-4)
    x28, y28 = images.load_mnist("valid", pad_to_32=False)
    assert x28.shape == (10000, 1, 28, 28) and y28.unique().tolist() == list(range(10))
    with pytest.raises(ValueError, match="split"):
        images.load_mnist("val")


def test_cifar10_zip_subset_covers_all_classes():
    if not images.cifar10_zip_path().is_file():
        pytest.skip("CIFAR-10 zip absent (set MOLGEN_DATA)")
    x, y = images.load_cifar10("test", limit=30)
    assert x.shape == (30, 3, 32, 32)
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.2
    assert y.tolist() == list(range(10)) * 3


def test_digits():
    pytest.importorskip("sklearn")
    (x, y), (x_test, y_test) = images.load_digits("train"), images.load_digits("test")
    assert x.shape == (1500, 1, 8, 8) and x_test.shape == (297, 1, 8, 8)
    _check_range(x)
    assert (y.bincount() + y_test.bincount()).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    with pytest.raises(ValueError, match="digits split"):
        images.load_digits("valid")


def test_missing_sources_give_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="CIFAR-10 zip not found"):
        images.load_cifar10(path=tmp_path / "none.zip")
    with pytest.raises(ModuleNotFoundError, match="no-deps"):
        images.package_file("molgen_no_such_package", "x")
    with pytest.raises(ValueError, match="unknown image dataset"):
        images.load_images("imagenet")


def _idx_gz(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_read_mnist_idx(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 28, 28))
    pixels[0, 0, 0], pixels[1, 0, 0] = 0, 255
    image_file, label_file = images.MNIST_FILES["test"]
    _idx_gz(tmp_path / image_file, pixels)
    _idx_gz(tmp_path / label_file, np.array([7, 2, 1]))
    x, y = images.read_mnist_idx(tmp_path, "test", pad_to_32=False)
    assert x.shape == (3, 1, 28, 28) and y.tolist() == [7, 2, 1]
    assert torch.equal(((x[:, 0] + 1) * 127.5).round().long(), torch.from_numpy(pixels))


def test_read_cifar10_tarball(tmp_path):
    rng = np.random.default_rng(0)
    tarball = tmp_path / "cifar-10-python.tar.gz"
    rows = {}
    with tarfile.open(tarball, "w:gz") as tar:
        for batch in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            rows[batch] = rng.integers(0, 256, (2, 3072)).astype(np.uint8)
            blob = pickle.dumps({"data": rows[batch], "labels": [3, 9]})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{batch}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    x, y = images.read_cifar10_tarball(tarball, "train")
    assert x.shape == (10, 3, 32, 32) and y.tolist() == [3, 9] * 5
    x, y = images.read_cifar10_tarball(tarball, "test")
    expected = rows["test_batch"].reshape(2, 3, 32, 32)
    assert torch.equal(((x + 1) * 127.5).round().to(torch.uint8), torch.from_numpy(expected))
