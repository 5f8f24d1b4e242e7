"""`selfsup export`: ONNX (run with onnxruntime) and TorchScript (torch.jit.load) files of a run's encoder give the
PyTorch encoder's embeddings at other batch sizes than the traced one, on images, series and tables; the file is
written atomically with a JSON description beside it; bad inputs fail with one line and exit code 2."""
import dataclasses
import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

import selfsup
from conftest import run_cli
from selfsup.loading import load_dataset
from selfsup.errors import ExportError
from selfsup.export import export_encoder, sidecar_path

TOL = 1e-4
BATCHES = (5, 37)  # neither is the batch of 8 the export traces with
SERIES = {"hidden": 8, "depth": 3, "out_dim": 16}


def mixed_frame(n=256, seed=0):
    """Numeric and categorical columns with missing values (a category unseen in training with seed != 0)."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"age": rng.normal(40, 10, n).round(1), "income": rng.lognormal(10, 1, n),
                       "colour": rng.choice(["red", "green", "blue"], n),
                       "size": pd.Categorical(rng.choice(["S", "M", "L"], n))})
    df.loc[rng.random(n) < 0.1, "age"] = np.nan
    if seed:
        df.loc[1, "colour"] = "purple"
    return df


VIDEO = "sprites?n=64&test=40&frames=4&size=16"
TRAIN = {
    "image": lambda out: selfsup.train("digits", method="simclr", epochs=1, batch_size=256, monitor=False, out=out,
                                       encoder_options={"widths": [8, 8, 8, 8]}, threads=1,
                                       method_options={"proj_hidden_dim": 16}),
    "series": lambda out: selfsup.train("ucr:GunPoint", method="ts2vec", epochs=1, batch_size=8, monitor=False,
                                        out=out, encoder_options=SERIES, threads=1),
    "series-transformer": lambda out: selfsup.train(
        "ucr:GunPoint", method="ts2vec", encoder="patch_transformer", epochs=1, batch_size=8, monitor=False, out=out,
        encoder_options={"d_model": 16, "depth": 1, "heads": 2, "out_dim": 16, "patch_len": 8}, threads=1),
    "table": lambda out: selfsup.train(selfsup.dataset_from_array(mixed_frame()), method="scarf", epochs=1,
                                       batch_size=64, monitor=False, out=out, encoder_options={"width": 32, "depth": 2},
                                       threads=1),
    "table-transformer": lambda out: selfsup.train(
        selfsup.dataset_from_array(mixed_frame()), method="scarf", encoder="ft_transformer", epochs=1, batch_size=64,
        monitor=False, out=out, encoder_options={"d_token": 16, "n_blocks": 1, "n_heads": 2}, threads=1),
    "video": lambda out: selfsup.train(VIDEO, method="simclr", epochs=1, batch_size=32, monitor=False, out=out,
                                       encoder_options={"widths": [8, 8]}, threads=1,
                                       method_options={"proj_hidden_dim": 16}),
}


def new_data(kind, n):
    """n unseen inputs in the run's raw format; series: the first is cut to 100 steps and NaN-padded."""
    if kind == "image":
        return load_dataset("digits").test.x[:n].numpy()
    if kind == "video":
        return load_dataset(VIDEO).test.x[:n].numpy()
    if kind.startswith("series"):
        x = load_dataset("ucr:GunPoint").test.x[:n].numpy().copy()
        x[0, :, 100:] = np.nan
        return x
    return mixed_frame(n, seed=1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run directories trained on first use, shared by this module's tests."""
    root, cache = tmp_path_factory.mktemp("export-runs"), {}

    def get(kind):
        if kind not in cache:
            TRAIN[kind](root / kind)
            cache[kind] = root / kind
        return cache[kind]

    return get


def exported_model(path, fmt):
    """The exported file as a function of a prepared batch (numpy out), loaded as a deployment would."""
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].shape[0] == "batch" and session.get_outputs()[0].shape[0] == "batch"
        return lambda x: session.run(None, {"input": x.numpy()})[0]
    module = torch.jit.load(str(path))
    return lambda x: module(x).detach().numpy()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("kind", list(TRAIN))
def test_export_matches_the_pytorch_encoder(runs, kind, fmt, tmp_path, record_property):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    run_dir = runs(kind)
    path = export_encoder(run_dir, fmt, out=tmp_path / f"enc.{fmt}")
    assert path == tmp_path / f"enc.{fmt}" and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [path.name, path.name + ".json"])  # no temporary files left
    info = json.loads(sidecar_path(path).read_text())
    run = selfsup.load(run_dir)
    model = exported_model(path, fmt)
    worst = 0.0
    for n in BATCHES:
        raw = new_data(kind, n)
        x = run.modality.prepare(run.modality.to_storage(raw, "new data", run.spec), run.spec)
        ref = run.embed(raw)
        got = model(x)
        assert got.shape == ref.shape == (n, info["output"]["shape"][1]) and got.dtype == np.float32
        assert list(x.shape[1:]) == info["input"]["shape"][1:] and x.dtype == torch.float32
        worst = max(worst, float(np.abs(got - ref).max()))
        if kind.startswith("series"):  # a NaN-padded series gives the embedding of the short series itself
            np.testing.assert_allclose(got[0], run.embed(raw[0, :, :100])[0], atol=TOL)
    record_property("max_abs_diff", worst)
    print(f"{kind} {fmt}: max abs difference from the PyTorch encoder {worst:.2e} (at export: "
          f"{info['check']['max_abs_diff']:.2e})")
    assert worst <= TOL and info["check"]["max_abs_diff"] <= TOL
    assert info["format"] == fmt and info["modality"] == run.resolved.modality and info["input"]["dtype"] == "float32"
    assert str(x.shape[1]) in info["input"]["preparation"]


def cli(*args):
    """The command line in this process (conftest.run_cli, warnings shown): (exit code, stdout, stderr)."""
    proc = run_cli(*args, show_warnings=True)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(code, err, *needles):
    assert code == 2, (code, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("selfsup: error:"), err
    for needle in needles:
        assert needle in err, (needle, err)


def test_cli_default_path_and_json(runs):
    run_dir = runs("image")
    proc = run_cli("export", run_dir, "--format", "torchscript", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert (run_dir / "encoder.pt").is_file() and info == json.loads((run_dir / "encoder.pt.json").read_text())
    assert info["input"]["shape"] == ["batch", 1, 8, 8] and info["output"]["shape"] == ["batch", 8]
    (run_dir / "encoder.pt").unlink()
    (run_dir / "encoder.pt.json").unlink()


@pytest.mark.parametrize("args, needles", [
    (["--format", "tflite"], ["--format 'tflite'", "onnx or torchscript"]),
    (["--format", "torchscript", "--opset", "17"], ["--opset 17"]),
])
def test_bad_arguments_are_one_line(runs, tmp_path, args, needles):
    code, _, err = cli("export", runs("image"), *args, "--out", tmp_path / "enc")
    assert_one_line_error(code, err, *needles)
    assert not list(tmp_path.iterdir())


def test_missing_run_is_one_line(tmp_path):
    code, _, err = cli("export", tmp_path / "no-run", "--format", "onnx")
    assert_one_line_error(code, err, str(tmp_path / "no-run"))


def test_existing_output_needs_overwrite(runs, tmp_path):
    out = tmp_path / "enc.pt"
    out.write_bytes(b"keep me")
    code, _, err = cli("export", runs("image"), "--format", "torchscript", "--out", out)
    assert_one_line_error(code, err, str(out), "--overwrite")
    assert out.read_bytes() == b"keep me" and not sidecar_path(out).exists()
    code, _, err = cli("export", runs("image"), "--format", "torchscript", "--out", out, "--overwrite")
    assert code == 0, err
    assert out.read_bytes() != b"keep me" and sidecar_path(out).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.pt", "enc.pt.json"]


def test_missing_onnx_packages_name_the_extra(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    code, _, err = cli("export", runs("image"), "--format", "onnx", "--out", tmp_path / "enc.onnx")
    assert_one_line_error(code, err, "pip install 'selfsup[export]'", "onnxruntime")
    assert not list(tmp_path.iterdir())


class BakedBatch(nn.Module):
    """An encoder whose trace is only right at the traced batch size (len(x) becomes a constant)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) + torch.zeros(len(x), 1)


def test_an_export_that_differs_from_pytorch_is_refused(runs, tmp_path):
    run = selfsup.load(runs("image"))
    bad = dataclasses.replace(run, encoder=BakedBatch(run.encoder))
    with pytest.raises(ExportError, match="batch of 3"):
        export_encoder(bad, "torchscript", out=tmp_path / "enc.pt")
    assert not list(tmp_path.iterdir())
