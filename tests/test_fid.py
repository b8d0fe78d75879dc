"""FID: the Fréchet distance against scipy on Gaussians with known covariances, the streaming
statistics, TF's legacy resize, Inception features, and (marked slow: ~30 s of CPU Inception
plus ~30 s per 2048-d distance on one thread) FIDs on 64-image real subsets. FID at N=64 is
strongly biased upwards, so only the ordering is checked."""
import numpy as np
import pytest
import scipy.linalg
import torch

from molgen.metrics import fid
from molgen.data import images

N = 64


def _random_cov(rng, d, rank=None):
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / d + (0.0 if rank else 0.1) * np.eye(d)


def _scipy_frechet(mu1, c1, mu2, c2):
    s = scipy.linalg.sqrtm(c1 @ c2)
    return float(np.real(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * s)))


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    for d in (2, 16, 128):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        c1, c2 = _random_cov(rng, d), _random_cov(rng, d)
        assert fid.frechet_distance(mu1, c1, mu2, c2) == pytest.approx(_scipy_frechet(mu1, c1, mu2, c2), abs=1e-6)


def test_frechet_distance_closed_form_for_commuting_covariances():
    # diagonal covariances: tr(C1 + C2 - 2 (C1 C2)^1/2) = sum (sqrt(a) - sqrt(b))^2
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.1, 3, 50), rng.uniform(0.1, 3, 50)
    mu1, mu2 = rng.normal(size=50), rng.normal(size=50)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, abs=1e-9)


def test_frechet_distance_of_singular_covariance_to_itself_is_zero():
    # N < d makes feature covariances singular, the case where sqrtm of the product struggles
    rng = np.random.default_rng(2)
    c = _random_cov(rng, 256, rank=20)
    assert abs(fid.frechet_distance(np.zeros(256), c, np.zeros(256), c)) < 1e-9


def test_streaming_statistics_match_numpy():
    rng = np.random.default_rng(3)
    f = rng.uniform(0, 2, size=(250, 8)).astype(np.float32)
    stats = fid.FeatureStats(dim=8)
    for chunk in np.array_split(f, 7):
        stats.update(chunk)
    mu, cov = stats.mean_cov()
    np.testing.assert_allclose(mu, f.astype(np.float64).mean(0), atol=1e-12)
    np.testing.assert_allclose(cov, np.cov(f.astype(np.float64), rowvar=False), atol=1e-12)


def test_tf_resize_is_tf1_legacy_bilinear():
    rng = np.random.default_rng(4)
    src = rng.uniform(size=(5, 7))
    out = fid.InceptionFeatures.tf_resize(torch.from_numpy(src)[None, None], size=11)[0, 0].numpy()

    def legacy(n_in, n_out):  # TF1 resize_bilinear(align_corners=False): src = dst * in / out
        pos = np.arange(n_out) * n_in / n_out
        lo = np.floor(pos).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), pos - lo

    y0, y1, wy = legacy(5, 11)
    x0, x1, wx = legacy(7, 11)
    top = src[y0][:, x0] * (1 - wx) + src[y0][:, x1] * wx
    bottom = src[y1][:, x0] * (1 - wx) + src[y1][:, x1] * wx
    np.testing.assert_allclose(out, top * (1 - wy[:, None]) + bottom * wy[:, None], atol=1e-6)


@pytest.fixture(scope="module")
def inception():
    try:
        return fid.InceptionFeatures()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def mnist_stats(inception):
    try:
        x, _ = images.load_mnist("test")
    except (ModuleNotFoundError, FileNotFoundError) as err:
        pytest.skip(str(err))
    return [fid.feature_statistics(x[i * N:(i + 1) * N], inception, progress=False) for i in range(2)]


def test_inception_features_shape_and_grayscale(inception):
    x, _ = images.load_mnist("test")  # 1-channel input must equal its 3-channel copy
    gray = inception(x[:2])
    assert gray.shape == (2, 2048) and gray.dtype == torch.float32 and (gray >= 0).all()
    torch.testing.assert_close(gray, inception(x[:2].expand(-1, 3, -1, -1)))


@pytest.mark.slow
def test_fid_of_a_set_with_itself_is_zero(mnist_stats):
    (mu, cov), _ = mnist_stats
    assert abs(fid.frechet_distance(mu, cov, mu, cov)) < 1e-6


@pytest.mark.slow
def test_fid_separates_datasets(inception, mnist_stats):
    (mu_a, cov_a), (mu_b, cov_b) = mnist_stats
    if images.cifar10_zip_path().is_file():
        other, _ = images.load_cifar10("test", limit=N)
    else:  # sklearn digits, upscaled 8x8 -> 32x32: a visibly different distribution
        other = torch.nn.functional.interpolate(images.load_digits()[0][:N], size=32, mode="nearest")
    mu_o, cov_o = fid.feature_statistics(other, inception, progress=False)
    same = fid.frechet_distance(mu_a, cov_a, mu_b, cov_b)
    different = fid.frechet_distance(mu_a, cov_a, mu_o, cov_o)
    assert 0 < same < 150 and different > 2 * same, (same, different)


def test_reference_statistics_cache(tmp_path, inception, monkeypatch):
    pytest.importorskip("sklearn")
    mu, cov = fid.reference_statistics("digits", limit=8, cache_dir=tmp_path, model=inception, progress=False)
    assert (tmp_path / "fid" / f"digits-train-8-v{fid.STATS_VERSION}.npz").is_file()
    monkeypatch.setattr(fid, "feature_statistics", None)  # a second call must not recompute
    mu2, cov2 = fid.reference_statistics("digits", limit=8, cache_dir=tmp_path)
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_array_equal(cov, cov2)
