"""Time-series modality: the .ts reader, sources, z-scoring, batched views, mask-respecting encoders,
per-time-step embeddings and the generic methods on series views."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import selfsup
from conftest import run_cli
from selfsup.loading import load_dataset
from selfsup.errors import DataError
from selfsup.modalities import get_modality
from selfsup.views import ViewRequest
from selfsup.modalities.sequences.augment import (SeriesAugmentation, SeriesViewMaker, augment, recipe,
                                                   segment_permutation)
from selfsup.modalities.sequences.encoders import DilatedConvEncoder, PatchTransformerEncoder
from selfsup.modalities.timeseries.ts_format import read_ts

NAN = float("nan")
TINY = {"hidden": 8, "depth": 3, "out_dim": 16}

UNIVARIATE = """# a comment
@problemName Toy
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true a b
@data
1.0,2.0,3.0,4.0:a
0.5,0.25,-1,2e1:b
4,3,2,1:a
"""

MULTIVARIATE = """@problemName Toy2
@univariate false
@dimensions 2
@equalLength true
@seriesLength 3
@classLabel true x y
@data
1,2,3:10,20,30:x
4,5,6:40,50,60:y
"""

UNEQUAL_MISSING = """@problemName Toy3
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true 1 2
@data
1,2,3,4,5:6,7,8,9,10:1
1,?,3:4,5:2
7,8:9,?:1
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ts_reader_univariate(tmp_path):
    f = read_ts(write(tmp_path, "u.ts", UNIVARIATE))
    assert f.x.shape == (3, 1, 4) and f.x.dtype == np.float32
    np.testing.assert_allclose(f.x[1, 0], [0.5, 0.25, -1, 20])
    assert f.labels.tolist() == ["a", "b", "a"]
    assert f.header["problemname"] == "Toy" and f.header["class_labels"] == ["a", "b"]


def test_ts_reader_multivariate(tmp_path):
    f = read_ts(write(tmp_path, "m.ts", MULTIVARIATE))
    assert f.x.shape == (2, 2, 3)
    np.testing.assert_allclose(f.x[1], [[4, 5, 6], [40, 50, 60]])
    assert f.labels.tolist() == ["x", "y"]


def test_ts_reader_unequal_length_and_missing_values(tmp_path):
    f = read_ts(write(tmp_path, "um.ts", UNEQUAL_MISSING))
    assert f.x.shape == (3, 2, 5)
    np.testing.assert_array_equal(f.lengths, [5, 3, 2])
    np.testing.assert_allclose(f.x[1, 0], [1, NAN, 3, NAN, NAN])  # '?' then end padding
    np.testing.assert_allclose(f.x[1, 1], [4, 5, NAN, NAN, NAN])  # a shorter dimension is padded too
    np.testing.assert_allclose(f.x[2, 1], [9, NAN, NAN, NAN, NAN])
    assert f.labels.tolist() == ["1", "2", "1"]
    ds = load_dataset(f"ts:{tmp_path / 'um.ts'}")  # nothing dropped: all cases and observed values kept
    assert len(ds.train) == 3 and int((~torch.isnan(ds.train.x)).sum()) == 10 + 4 + 3


@pytest.mark.parametrize("body, line, needle", [
    ("1,2,x,4:a", 10, "cannot read 'x'"),
    ("1,2,3,4:c", 10, "not one of those declared"),
    ("1,2,3:a", 10, "@seriesLength 4"),
    ("1,2,3,4:5,6,7,8:a", 10, "@univariate true but the case has 2 dimensions"),
    ("1,2,3,4", 10, "found no ':'"),
])
def test_malformed_ts_files_name_the_line(tmp_path, body, line, needle):
    text = UNIVARIATE.replace("1.0,2.0,3.0,4.0:a", body)
    path = write(tmp_path, "bad.ts", text)
    with pytest.raises(DataError) as err:
        read_ts(path)
    assert f"{path}:{line}:" in str(err.value) and needle in str(err.value)


def test_malformed_ts_header_and_dimension_count(tmp_path):
    path = write(tmp_path, "b1.ts", MULTIVARIATE.replace("4,5,6:40,50,60:y", "4,5,6:y"))
    with pytest.raises(DataError, match=r"b1.ts:9: expected 2 dimensions"):
        read_ts(path)
    path = write(tmp_path, "b2.ts", "@problemName X\n@bogus 1\n@data\n1,2:a\n")
    with pytest.raises(DataError, match=r"b2.ts:2: unknown header tag '@bogus'"):
        read_ts(path)
    path = write(tmp_path, "b3.ts", "@problemName X\n1,2,3\n")
    with pytest.raises(DataError, match=r"b3.ts:2: expected a header line"):
        read_ts(path)
    path = write(tmp_path, "b4.ts", "@problemName X\n@classLabel true a\n")
    with pytest.raises(DataError, match="no @data"):
        read_ts(path)


def test_cli_reports_malformed_ts_in_one_line(tmp_path):
    path = write(tmp_path, "bad_TRAIN.ts", UNIVARIATE.replace("4,3,2,1:a", "4,3,oops,1:a"))
    proc = run_cli("train", "--data", f"ts:{path}", "--method", "ts2vec", "--out", tmp_path / "run")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and f"{path}:12:" in proc.stderr, proc.stderr


def test_bundled_ucr_and_uea_problems_keep_every_series():
    ds = load_dataset("ucr:GunPoint")
    assert ds.modality == "timeseries" and tuple(ds.train.x.shape) == (50, 1, 150) and len(ds.test) == 150
    jv = load_dataset("ucr:JapaneseVowels")  # 12 channels, lengths 7..29, padded with NaN
    assert tuple(jv.train.x.shape) == (270, 12, 29) and len(jv.test) == 370 and len(jv.info["classes"]) == 9
    lengths = (~torch.isnan(torch.cat([jv.train.x, jv.test.x])).all(1)).sum(1)
    assert lengths.min() == 7 and lengths.max() == 29
    with pytest.raises(DataError, match="bundled with aeon: .*GunPoint"):
        load_dataset("ucr:NoSuchProblem")


def test_csv_and_npy_sources(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("cat,1,2,3,4\ndog,5,?,7,\ncat,8,9,,\n")
    ds = load_dataset(f"tscsv:{csv}?label=first")
    assert tuple(ds.train.x.shape) == (3, 1, 4) and ds.train.y.tolist() == [0, 1, 0]
    np.testing.assert_allclose(ds.train.x[1, 0].numpy(), [5, NAN, 7, NAN])
    with pytest.raises(DataError, match=r"s2.csv:2: column 2: cannot read 'abc'"):
        (tmp_path / "s2.csv").write_text("1,2,3\n4,abc,6\n")
        load_dataset(f"tscsv:{tmp_path / 's2.csv'}?header=no")
    x = np.random.default_rng(0).normal(size=(10, 3, 20)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(10) % 2)
    ds = load_dataset(f"npy:{tmp_path / 'x.npy'}?labels={tmp_path / 'y.npy'}", modality="timeseries")
    assert ds.modality == "timeseries" and tuple(ds.train.x.shape) == (10, 3, 20)
    with pytest.raises(DataError, match="series 1 has no observed value"):
        x[1] = np.nan
        get_modality("timeseries").from_array(x, "x.npy")


def test_zscore_statistics_per_channel_from_training_data():
    mod = get_modality("timeseries")
    x = torch.tensor([[[1.0, 2.0, NAN], [10.0, 30.0, 50.0]], [[3.0, NAN, NAN], [70.0, 90.0, NAN]]])
    spec = mod.fit_spec(x)
    assert spec["mean"] == pytest.approx([2.0, 50.0]) and spec["std"] == pytest.approx([np.std([1, 2, 3]),
                                                                                        np.std([10, 30, 50, 70, 90])])
    z = mod.prepare(x, spec)
    assert torch.isnan(z[0, 0, 2]) and z[0, 1, 2].item() == pytest.approx(0.0)


def test_views_are_batched_respect_padding_and_are_reproducible():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 2, 40, generator=g)
    x[3, :, 25:] = NAN  # a short series
    vm = SeriesViewMaker(ViewRequest("instance"), recipe("instance"), [0.0, 0.0], [1.0, 1.0])
    v1, v2 = vm(x, torch.Generator().manual_seed(1)).global_views
    assert v1.shape == x.shape and v2.shape == x.shape and not torch.equal(v1, v2)
    w1, _ = vm(x, torch.Generator().manual_seed(1)).global_views
    assert torch.equal(torch.nan_to_num(v1), torch.nan_to_num(w1))
    no_holes = SeriesViewMaker(ViewRequest("instance"), recipe("instance", options={"mask_p": 0.0}), [0.0, 0.0],
                               [1.0, 1.0])
    steps = (~torch.isnan(no_holes(x, torch.Generator().manual_seed(1)).global_views[0]).all(1)).int()
    assert steps[3].sum() <= 25 and torch.all(steps[:, :-1] >= steps[:, 1:])  # left-aligned, padding after
    # a pure crop is a contiguous window of the series at its own time scale
    crop = augment(x, SeriesAugmentation(crop_scale=(0.5, 0.5)), torch.Generator().manual_seed(2))
    n = int((~torch.isnan(crop[0, 0])).sum())
    assert n == 20 and any(torch.equal(crop[0, :, :n], x[0, :, s:s + n]) for s in range(21))
    full = torch.nan_to_num(x)
    perm = segment_permutation(full, torch.full((16,), 40), 5, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(perm.sort(-1).values, full.sort(-1).values) and not torch.equal(perm, full)


@pytest.mark.parametrize("make", [
    lambda: DilatedConvEncoder(2, **TINY),
    lambda: DilatedConvEncoder(2, causal=True, **TINY),
    lambda: PatchTransformerEncoder(2, patch_len=4, d_model=16, depth=2, heads=2, out_dim=16),
])
def test_padding_and_masked_steps_do_not_change_embeddings(make):
    torch.manual_seed(0)
    enc = make().eval()
    x = torch.randn(3, 2, 20)
    x[1, :, 14:] = NAN  # shorter series
    x[2, 0, 5] = NAN  # a missing value
    with torch.no_grad():
        ref, seq = enc(x), enc.forward_sequence(x)
        assert torch.isfinite(ref).all() and torch.isfinite(seq).all()
        longer = F.pad(x, (0, 13), value=NAN)  # pad further with NaN
        torch.testing.assert_close(enc(longer), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(enc.forward_sequence(longer)[:, :20], seq, atol=1e-5, rtol=1e-5)
        if not isinstance(enc, PatchTransformerEncoder):  # patches are anchored at step 0
            torch.testing.assert_close(enc(F.pad(x, (7, 0), value=NAN)), ref, atol=1e-5, rtol=1e-5)
        garbage = x.clone()
        garbage[1, :, 14:] = 1e3 * torch.randn(2, 6)  # padded values changed, marked invalid by the mask
        mask = torch.ones(3, 20, dtype=torch.bool)
        mask[1, 14:] = False
        torch.testing.assert_close(enc(garbage, mask=mask), ref, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(enc(garbage), ref, atol=1e-3)  # without the mask they are data
        changed = x.clone()
        changed[1, 0, 3] += 1.0  # a real value matters
        assert not torch.allclose(enc(changed)[1], ref[1], atol=1e-4)


@pytest.mark.parametrize("causal", [False, True])
def test_dilated_conv_as_one_matrix_product_equals_the_padded_convolution(causal):
    """The channels-last matrix-product convolution equals nn.Conv1d on the zero-padded series, in value and
    gradient, including the lengths where taps only see padding and are skipped."""
    from selfsup.modalities.sequences.encoders import DilatedConv

    torch.manual_seed(0)
    cases = [(3, d, n) for d, n in ((1, 7), (2, 1), (4, 9), (16, 10), (16, 16), (16, 17), (512, 24))]
    cases += [(2, 4, 1), (2, 4, 3), (4, 2, 5), (4, 8, 2)]  # even kernels: every tap may land in the padding
    for kernel, dilation, length in cases:
        conv = DilatedConv(4, 5, kernel, dilation, causal)
        field = (kernel - 1) * dilation
        pad = (field, 0) if causal else (field // 2, field - field // 2)
        x = torch.randn(2, length, 4, requires_grad=True)
        ours = conv(x)
        reference = conv.conv(F.pad(x.transpose(1, 2), pad)).transpose(1, 2)  # the plain padded convolution
        torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-6)
        g_ours = torch.autograd.grad(ours.square().sum(), (x, conv.conv.weight), allow_unused=True,
                                     materialize_grads=True)
        g_ref = torch.autograd.grad(reference.square().sum(), (x, conv.conv.weight))
        for a, b in zip(g_ours, g_ref):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        if length > dilation:  # negative control: the kernel read backwards is another convolution
            flipped = conv.conv.weight.detach().flip(-1)
            wrong = F.conv1d(F.pad(x.transpose(1, 2), pad), flipped, conv.conv.bias, dilation=dilation)
            assert not torch.allclose(ours, wrong.transpose(1, 2), atol=1e-3)


def test_ts2vec_run_per_timestep_embeddings_and_cli(tmp_path):
    out = tmp_path / "run"
    run = selfsup.train("ucr:ItalyPowerDemand", method="ts2vec", epochs=1, batch_size=8, encoder_options=TINY,
                        monitor=False, out=out)
    spec = run.resolved.data_spec
    assert run.resolved.encoder == "dilated_cnn" and len(spec["mean"]) == 1 and spec["std"][0] > 0
    ds = load_dataset("ucr:ItalyPowerDemand")
    loaded = selfsup.load(out)
    z = loaded.embed(ds.test.x[:7].numpy())
    steps = loaded.embed(ds.test.x[:7].numpy(), per_timestep=True)
    assert z.shape == (7, 16) and steps.shape == (7, 24, 16)
    np.testing.assert_allclose(steps.max(axis=1), z, atol=1e-5)  # instance vector = max over steps
    a, b = ds.test.x[0, 0].numpy(), ds.test.x[1, 0, :12].numpy()
    ragged = loaded.embed([a, b])  # unequal lengths: padded with NaN, which changes nothing
    np.testing.assert_allclose(ragged, np.concatenate([loaded.embed(a[None]), loaded.embed(b[None])]), atol=1e-5)
    proc = run_cli("embed", out, "--data", "ucr:ItalyPowerDemand", "--split", "train", "--per-timestep",
                   "--out", tmp_path / "steps.npy")
    assert proc.returncode == 0, proc.stderr
    saved = np.load(tmp_path / "steps.npy")
    assert saved.shape == (67, 24, 16)
    np.testing.assert_allclose(saved[:7], loaded.embed(ds.train.x[:7], per_timestep=True), atol=1e-5)


@pytest.mark.parametrize("method, encoder", [("simclr", "dilated_cnn"), ("vicreg", "dilated_cnn"),
                                             ("masked_reconstruction", "dilated_cnn"), ("ts2vec", "patch_transformer")])
def test_other_methods_and_encoders_train_on_series_views(method, encoder):
    jv = load_dataset("ucr:JapaneseVowels")  # multivariate, unequal lengths
    ds = selfsup.api.dataset_from_array(jv.train.x[:64], jv.train.y[:64], modality="timeseries")
    opts = {"proj_dim": 32, "proj_hidden_dim": 32} if method in ("simclr", "vicreg") else {}
    enc_opts = TINY if encoder == "dilated_cnn" else {"d_model": 16, "depth": 1, "heads": 2, "out_dim": 16,
                                                      "patch_len": 4}
    run = selfsup.train(ds, method=method, encoder=encoder, epochs=2, batch_size=32, encoder_options=enc_opts,
                        method_options=opts, monitor=False)
    z = run.embed(jv.test.x[:50])
    assert z.shape == (50, 16) and np.isfinite(z).all() and z.std(0).mean() > 0


def test_benchmark_script_json(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "ucr.json"
    proc = subprocess.run([sys.executable, "benchmarks/ucr.py", "--datasets", "ItalyPowerDemand", "--seeds", "1",
                           "--iters", "4", "--jobs", "1", "--json", "--out", str(out)], capture_output=True, text=True,
                          cwd=str(__import__("pathlib").Path(__file__).parents[1]), timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    row = doc["datasets"]["ItalyPowerDemand"]
    assert set(row) >= {"acc_mean", "acc_std", "seconds", "published"} and 0.4 < row["acc_mean"] <= 1.0
    assert row["published"]["TS2Vec"] == 0.960 and json.loads(out.read_text())["seeds"] == [0]
