"""The QM9 property regressor that judges conditional generation: invariance, a tiny
training run that resumes exactly, and the slope statistic of the conditional table."""
import pytest
import torch

from molgen.metrics.regressor import REGRESSOR, PropertyRegressor, RegressorConfig, slope_at_fixed_size, train_regressor

from molecule_helpers import gen, needs_qm9, orthogonal, shuffled_space

TINY = dict(hidden=16, layers=2, batch_size=8, lr=1e-3, seed=0)


@pytest.mark.parametrize("proper", [True, False])
def test_regressor_is_invariant_to_rigid_motions_and_atom_order(proper):
    torch.manual_seed(0)
    model = PropertyRegressor(RegressorConfig("alpha", **TINY), mean=75.0, mad=6.0).double()
    space = shuffled_space([3, 6, 4])
    pos = torch.randn(len(space.batch), 3, generator=gen(1), dtype=torch.float64) * 1.5
    types = torch.randint(5, (len(space.batch),), generator=gen(2))
    ref = model(pos, types, space)
    moved = pos @ orthogonal(3, proper).T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert torch.allclose(model(moved, types, space), ref, atol=1e-10)
    perm = torch.randperm(len(pos), generator=gen(4))
    permuted = type(space)(space.batch[perm], space.num_graphs)
    assert torch.allclose(model(pos[perm], types[perm], permuted), ref, atol=1e-10)
    with pytest.raises(ValueError, match="unknown QM9 property 'polarisability'"):
        PropertyRegressor(RegressorConfig("polarisability"))


@needs_qm9
def test_tiny_regressor_run_resumes_exactly_and_predicts_in_edm_units(cache, tmp_path, monkeypatch):
    import molgen.metrics.regressor as regressor

    cfg = RegressorConfig("alpha", steps=6, **TINY)
    whole = train_regressor(cfg, tmp_path / "a", progress=False, checkpoint_every=2)
    save = regressor.save_checkpoint

    def killed_after_step_4(state, path):
        save(state, path)
        if state["step"] == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(regressor, "save_checkpoint", killed_after_step_4)
    with pytest.raises(KeyboardInterrupt):
        train_regressor(cfg, tmp_path / "b", progress=False, checkpoint_every=2)
    saved = []
    monkeypatch.setattr(regressor, "save_checkpoint", lambda state, path: (saved.append(state["step"]),
                                                                          save(state, path)))
    resumed = train_regressor(cfg, tmp_path / "b", progress=False, checkpoint_every=2)
    assert saved == [6]  # it went on from step 4, not from the start
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    loaded = PropertyRegressor.load(tmp_path / "a" / REGRESSOR)  # weights_only
    assert 70 < loaded.mean < 80 and loaded.mad > 1  # α of QM9: ~75 Bohr³
    mol = (torch.randn(9, 3, generator=gen(0)), torch.tensor([1, 1, 0, 0, 0, 0, 0, 0, 0]))
    assert torch.allclose(loaded.predict([mol]), whole.predict([mol]))


def test_slope_at_fixed_size_recovers_the_slope_and_ignores_the_size_effect():
    g = torch.Generator().manual_seed(0)
    sizes = torch.randint(9, 20, (4000,), generator=g)
    targets = 5.0 * sizes + torch.randn(4000, generator=g) * 3
    predicted = 0.4 * targets + 2.5 * sizes ** 1.5 + torch.randn(4000, generator=g) * 0.01
    assert slope_at_fixed_size(predicted, targets, sizes) == pytest.approx(0.4, abs=1e-3)
    # a prediction from the size alone follows no target within a size
    assert slope_at_fixed_size(7.0 * sizes.double(), targets, sizes) == pytest.approx(0.0, abs=1e-9)
