"""Tabular modality: reading, preprocessing round-trip, corruptions, methods, Run.embed and the sklearn API."""
import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import selfsup
from selfsup.loading import load_dataset
from selfsup.errors import ConfigError, DataError
from selfsup.modalities import get_modality
from selfsup.modalities.tabular.corruptions import (LayoutTensors, gaussian_noise, marginal_replace,
                                                    mask_and_replace, swap_noise)
from selfsup.views import ViewRequest
from selfsup.modalities.tabular.preprocess import MISSING_SLOT, UNKNOWN_SLOT, Layout, Preprocessor

pd = pytest.importorskip("pandas")
TINY = {"width": 32, "depth": 2}


@pytest.fixture(autouse=True)
def one_thread():
    """Small MLPs: one thread is fastest and does not fight other processes for the 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mixed_frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "age": rng.normal(40, 10, n).round(1),
        "income": rng.lognormal(10, 1, n),
        "colour": rng.choice(["red", "green", "blue"], n),
        "size": pd.Categorical(rng.choice(["S", "M", "L"], n)),
    })
    df.loc[rng.random(n) < 0.1, "age"] = np.nan
    df.loc[rng.random(n) < 0.1, "colour"] = None
    return df


def test_preprocessing_round_trip_unseen_categories_and_missing():
    mod = get_modality("tabular")
    train = mixed_frame()
    x = mod.from_array(train, "train")
    assert x.dtype == torch.float64 and x.shape == (200, 4)
    spec = mod.fit_spec(x)
    assert [c["kind"] for c in spec["columns"]] == ["numeric", "numeric", "categorical", "categorical"]
    assert spec["columns"][0]["missing"] and not spec["columns"][1]["missing"]
    assert sorted(spec["columns"][2]["values"]) == ["blue", "green", "red"]
    # The spec is plain YAML (it is stored in the run's config.yaml) and survives a round trip.
    spec2 = yaml.safe_load(yaml.safe_dump(spec))
    assert spec2 == spec

    new = pd.DataFrame({"size": ["M", "XXL", None], "colour": ["purple", None, "red"],
                        "age": [np.nan, 30.0, 50.0], "income": [1e4, np.nan, 2e4], "extra": [1, 2, 3]})
    xs = mod.to_storage(new, "new rows", spec2)  # columns matched by name, 'extra' ignored
    out = Preprocessor(spec2)(xs)
    ref = Preprocessor(spec)(mod.to_storage(new, "new rows", spec))
    assert torch.equal(out, ref)
    lay = Layout.from_spec(spec)
    assert out.shape == (3, lay.dim) and out.dtype == torch.float32 and torch.isfinite(out).all()
    age_value, age_missing = lay.value_dims[0], lay.indicator_dims[0]
    median_scaled = Preprocessor(spec).scale(torch.tensor([[spec["columns"][0]["median"], 1e4]],
                                                          dtype=torch.float64))[0, 0]
    assert out[0, age_value] == pytest.approx(float(median_scaled), abs=1e-5)  # missing -> imputed median
    assert out[:, age_missing].tolist() == [1.0, 0.0, 0.0]
    (c_start, c_size), (s_start, s_size) = lay.cat_blocks
    colour = out[:, c_start:c_start + c_size]
    assert (colour.sum(1) == 1).all()  # every block stays one-hot
    assert colour[0, UNKNOWN_SLOT] == 1 and colour[1, MISSING_SLOT] == 1  # unseen -> unknown, None -> missing
    known_red = 2 + spec["columns"][2]["values"].index("red")
    assert colour[2, known_red] == 1
    size = out[:, s_start:s_start + s_size]
    assert size[1, UNKNOWN_SLOT] == 1 and size[2, MISSING_SLOT] == 1
    assert size[0, 2 + spec["columns"][3]["values"].index("M")] == 1
    # An income never seen (NaN) in training is imputed, without an indicator (none was learned).
    assert out[1, lay.value_dims[1]] == pytest.approx(float(Preprocessor(spec).scale(
        torch.tensor([[40.0, spec["columns"][1]["median"]]], dtype=torch.float64))[0, 1]), abs=1e-5)


def test_same_category_same_key_across_sources_and_types():
    mod = get_modality("tabular")
    a = mod.from_array(pd.DataFrame({"c": pd.Categorical(["1", "2", "x"])}), "a")
    b = mod.from_array(np.array([[1.0], [2.0], ["x"]], dtype=object), "b", categorical=[0])
    assert torch.equal(a, b)


def test_quantile_scaling_is_monotone_and_roughly_normal():
    mod = get_modality("tabular")
    x = mod.from_array(np.random.default_rng(0).exponential(size=(5000, 1)), "x")
    spec = mod.fit_spec(x)
    z = Preprocessor(spec)(x)[:, 0]
    order = torch.argsort(x[:, 0])
    assert (z[order].diff() >= -1e-6).all()
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.1


@pytest.fixture(scope="module")
def prepared():
    mod = get_modality("tabular")
    df = mixed_frame(512, seed=1)
    x = mod.from_array(df, "t")
    spec = mod.fit_spec(x)
    return Preprocessor(spec)(x), LayoutTensors(Layout.from_spec(spec)), Layout.from_spec(spec)


def _changed_columns(a, b, layout):
    cols = torch.tensor(layout.col_of_dim)
    changed = torch.zeros(a.shape[0], int(cols.max()) + 1)
    return changed.index_add_(1, cols, (a != b).float()) > 0


@pytest.mark.parametrize("name,fn,rate", [("scarf", marginal_replace, 0.6), ("vime", mask_and_replace, 0.3),
                                          ("swap", swap_noise, 0.15), ("gaussian", gaussian_noise, 0.5)])
def test_corruption_keeps_shape_and_dtype_and_changes_expected_fraction(prepared, name, fn, rate):
    xp, lt, layout = prepared
    g = torch.Generator().manual_seed(0)
    if name == "gaussian":
        out, mask = fn(xp, lt, 0.5, rate, g)
    else:
        out, mask = fn(xp, lt, rate, g)
    assert out.shape == xp.shape and out.dtype == xp.dtype and mask.shape == (len(xp), 4)
    assert mask.dtype == torch.float32 and set(mask.unique().tolist()) <= {0.0, 1.0}
    changed = _changed_columns(out, xp, layout)
    assert not (changed & (mask == 0)).any()  # nothing changes outside the mask
    for s, size in layout.cat_blocks:  # categorical blocks stay exactly one-hot
        assert (out[:, s:s + size].sum(1) == 1).all()
    if name == "scarf":
        assert (mask.sum(1) == round(rate * 4)).all()  # exactly round(rate * F) columns per row
    elif name == "gaussian":
        cat_cols = [layout.col_of_dim[s] for s, _ in layout.cat_blocks]
        assert mask[:, cat_cols].sum() == 0 and not changed[:, cat_cols].any()
        num = [layout.col_of_dim[d] for d in layout.value_dims]
        assert abs(float(mask[:, num].mean()) - rate) < 0.06
        assert torch.equal(changed[:, num], mask[:, num].bool())
    elif name == "vime":  # VIME's mask labels the cells whose value actually changed
        assert torch.equal(mask.bool(), changed)
    else:
        assert abs(float(mask.mean()) - rate) < 0.04
    if name != "gaussian":
        # Replacement draws another row's value: the continuous 'income' column changes unless the draw is
        # the row itself (probability 1/B), so its changed fraction matches the mask.
        income = 1
        expected = round(rate * 4) / 4 if name == "scarf" else rate  # SCARF corrupts exactly round(rate * F)
        frac_changed = float(changed[:, income].float().mean())
        assert abs(frac_changed - float(mask[:, income].mean())) < 0.02
        assert abs(frac_changed - expected) < 0.07


def test_view_recipes_shapes():
    mod = get_modality("tabular")
    x = mod.from_array(mixed_frame(64), "t")
    spec = mod.fit_spec(x)
    d = spec["input_dim"]
    g = torch.Generator().manual_seed(0)
    clean = mod.prepare(x, spec)
    scarf = mod.view_maker(ViewRequest("feature_corruption", 1, clean=True), spec)(x, g)
    assert len(scarf.global_views) == 1 and torch.equal(scarf.clean, clean)
    assert not torch.equal(scarf.global_views[0], clean) and scarf.corruption_mask is None
    for recipe in ("mask_and_replace", "swap_noise"):
        v = mod.view_maker(ViewRequest(recipe, 1, clean=True, corruption_mask=True), spec)(x, g)
        assert v.global_views[0].shape == v.clean.shape == v.corruption_mask.shape == (64, d)
        assert torch.equal(v.clean, clean) and v.corruption_mask.dtype == torch.bool
        changed = v.global_views[0] != clean
        assert bool(v.corruption_mask[changed].all())  # every changed input dim is marked corrupted
    for recipe in ("instance", "instance_light", "asymmetric"):
        v = mod.view_maker(ViewRequest(recipe), spec)(x, g)
        assert len(v.global_views) == 2 and not torch.equal(*v.global_views)
    with pytest.raises(ConfigError, match="tables have no 'nope' views"):
        mod.view_maker(ViewRequest("nope"), spec)
    with pytest.raises(ConfigError, match="step masks"):
        mod.view_maker(ViewRequest("instance", keep=True), spec)
    multi = mod.view_maker(ViewRequest("instance", local_views=3, local_size=0.5), spec)(x, g)
    assert len(multi.local_views) == 3 and all(v.shape == (64, d) for v in multi.local_views)
    # a local view replaces more of the row than a global one (rate 0.3 + 0.7 * 0.5 = 0.65 against 0.3)
    changed = lambda v: float((v != clean).float().mean())  # noqa: E731
    assert changed(multi.local_views[0]) > 1.5 * changed(multi.global_views[0])


def write_csv(path, text):
    path.write_text(text)
    return path


def test_csv_malformed_row_names_the_line(tmp_path):
    p = write_csv(tmp_path / "bad.csv", "a,b,label\n1,2,x\n3,4,y\n5,6,7,x\n")
    with pytest.raises(DataError, match=r"line 4: 4 fields, expected 3"):
        load_dataset(f"csv:{p}?label=label")


def test_csv_non_numeric_value_names_row_and_column(tmp_path):
    rows = "\n".join(f"{i},{i * 0.5},{'ab'[i % 2]}" for i in range(20))
    p = write_csv(tmp_path / "bad.csv", "a,b,label\n" + rows.replace("7,3.5,", "7,oops,") + "\n")
    with pytest.raises(DataError, match=r"line 9, column 'b': 'oops' is not a number") as err:
        load_dataset(f"csv:{p}?label=label")
    assert "categorical=b" in str(err.value)
    # Declaring the column numeric gives the same clear error even when most cells are text.
    p2 = write_csv(tmp_path / "bad2.csv", "a,b\n1,x\n2,y\n")
    with pytest.raises(DataError, match=r"line 2, column 'b': 'x' is not a number \(the column is declared"):
        load_dataset(f"csv:{p2}?numeric=b")


def test_csv_reads_kinds_missing_and_test_file(tmp_path):
    text = "id;age;city;y\n" + "".join(f"{i};{'' if i % 7 == 0 else 20 + i};{'ab'[i % 2]};{i % 2}\n"
                                         for i in range(30))
    p = write_csv(tmp_path / "t.csv", text)
    t = write_csv(tmp_path / "test.csv", "city;y;age;id\nc;1;NA;99\n")
    ds = load_dataset(f"csv:{p}?label=y&drop=id&test={t}")
    assert ds.modality == "tabular" and ds.info["columns"] == ["age", "city"]
    assert ds.info["kinds"] == ["numeric", "categorical"]
    assert ds.train.x.shape == (30, 2) and torch.isnan(ds.train.x[0, 0]) and ds.test.x.shape == (1, 2)
    assert ds.train.y.tolist() == [i % 2 for i in range(30)] and ds.test.y.tolist() == [1]
    with pytest.raises(ConfigError, match="unknown option"):
        load_dataset(f"csv:{p}?lable=y")
    with pytest.raises(ConfigError, match="column 'nope' not found"):
        load_dataset(f"csv:{p}?label=nope")


def test_parquet_matches_csv(tmp_path):
    pytest.importorskip("pyarrow")
    df = mixed_frame(50)
    df["y"] = np.arange(50) % 3
    df.to_parquet(tmp_path / "t.parquet")
    df.assign(size=df["size"].astype(str)).to_csv(tmp_path / "t.csv", index=False)
    a = load_dataset(f"parquet:{tmp_path / 't.parquet'}?label=y")
    b = load_dataset(f"csv:{tmp_path / 't.csv'}?label=y&categorical=size")
    assert a.info["kinds"] == b.info["kinds"] == ["numeric", "numeric", "categorical", "categorical"]
    assert torch.allclose(a.train.x, b.train.x, equal_nan=True)
    assert np.array_equal(a.train.y, b.train.y)


def test_sklearn_tables_have_fixed_stratified_split():
    ds = load_dataset("sklearn:breast_cancer")
    assert ds.train.x.shape == (398, 30) and ds.test.x.shape == (171, 30)
    assert "70/30" in ds.info["test_source"]
    again = load_dataset("sklearn:breast_cancer")
    assert torch.equal(ds.test.x, again.test.x)
    with pytest.raises(ConfigError, match="unknown table"):
        load_dataset("sklearn:nope")


def test_mlbench_missing_gives_instructions(tmp_path):
    with pytest.raises(DataError, match="apt-get download r-cran-mlbench"):
        load_dataset("mlbench:LetterRecognition", data_dir=str(tmp_path))


MLBENCH = [d for d in ("/usr/lib/R/site-library/mlbench/data", "/tmp/mlbench") if Path(d).exists()]


@pytest.mark.skipif(not MLBENCH, reason="r-cran-mlbench not available (apt-get download r-cran-mlbench)")
def test_mlbench_satellite_uci_split():
    pytest.importorskip("pyreadr")
    ds = load_dataset("mlbench:Satellite", data_dir=MLBENCH[0])
    assert ds.train.x.shape == (4435, 36) and ds.test.x.shape == (2000, 36) and len(ds.info["classes"]) == 6


def test_methods_do_not_import_modalities():
    root = Path(selfsup.__file__).parent / "methods"
    for name in ("scarf.py", "vime.py", "denoising_autoencoder.py"):
        tree = ast.parse((root / name).read_text())
        mods = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        mods += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not any("modalities" in m for m in mods), (name, mods)


@pytest.mark.parametrize("method,options", [("scarf", {}), ("vime", {}), ("dae", {}),
                                            ("vicreg", {"proj_dim": 64, "proj_hidden_dim": 64}),
                                            ("barlow_twins", {"proj_dim": 64, "proj_hidden_dim": 64}),
                                            ("simclr", {"proj_hidden_dim": 64, "proj_dim": 32})])
def test_methods_train_on_tables(method, options):
    df = mixed_frame(256)
    run = selfsup.train(selfsup.dataset_from_array(df), method=method, epochs=6, batch_size=64, monitor=False,
                        encoder_options=TINY, method_options=options, log_every=1, seed=0)
    assert math.isfinite(run.summary["final_loss"]) and run.summary["steps"] == 24
    z = run.embed(df.iloc[:10])
    assert z.shape == (10, 64) and np.isfinite(z).all()


def test_reconstruction_methods_learn(tmp_path):
    """VIME and the DAE reduce their loss well below its starting value on a table with structure."""
    import json

    rng = np.random.default_rng(0)
    base = rng.normal(size=(512, 3))
    x = np.hstack([base, base @ rng.normal(size=(3, 5))])  # 5 columns predictable from the other 3
    for method in ("vime", "dae"):
        selfsup.train(x, method=method, epochs=30, batch_size=128, monitor=False, encoder_options=TINY,
                      log_every=1, out=tmp_path / method)
        losses = [json.loads(line)["loss"] for line in open(tmp_path / method / "metrics.jsonl") if '"step"' in line]
        assert len(losses) == 120 and np.mean(losses[-10:]) < 0.7 * np.mean(losses[:3]), (method, losses[:3],
                                                                                         losses[-3:])


def test_ft_transformer_encoder_embeds_categories():
    df = mixed_frame(128)
    run = selfsup.train(selfsup.dataset_from_array(df), method="scarf", encoder="ft_transformer", epochs=2,
                        batch_size=64, monitor=False, encoder_options={"d_token": 16, "n_blocks": 1, "n_heads": 2})
    z = run.embed(df.iloc[:5])
    assert z.shape == (5, 16) and np.isfinite(z).all()


def test_run_embed_new_rows_after_reload(tmp_path):
    df = mixed_frame(256)
    run = selfsup.train(selfsup.dataset_from_array(df), method="scarf", epochs=3, batch_size=64, monitor=False,
                        encoder_options=TINY, out=tmp_path / "run")
    loaded = selfsup.load(tmp_path / "run")
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["resolved"]["data_spec"]["columns"][2]["name"] == "colour"
    new = pd.DataFrame({"age": [None, 35.0], "income": [5e4, None], "colour": ["mauve", "red"], "size": ["S", "Q"]})
    z1, z2 = run.embed(new), loaded.embed(new)
    assert z1.shape == (2, 64) and np.isfinite(z1).all() and np.allclose(z1, z2, atol=1e-6)
    # The same rows as an object array in the spec's column order embed identically.
    assert np.allclose(loaded.embed(new[["age", "income", "colour", "size"]].to_numpy(object)), z2, atol=1e-6)
    with pytest.raises(DataError, match="missing column"):
        loaded.embed(new.drop(columns="size"))
    with pytest.raises(DataError, match=r"row 1.*column 'age'"):
        loaded.embed(new.assign(age=["1", "old"]))


def test_concat_readout_is_every_block_side_by_side():
    spec = get_modality("tabular").fit_spec(torch.as_tensor(np.random.default_rng(0).normal(size=(64, 5))))
    mlp = get_modality("tabular").encoders.get("mlp")
    enc = mlp(spec, width=8, depth=3, readout="concat").eval()
    x = torch.randn(4, spec["input_dim"])
    z = enc(x)
    h, blocks = x, []
    for block in enc.net:
        h = block(h)
        blocks.append(h)
    assert enc.out_dim == 24 and z.shape == (4, 24)
    assert torch.equal(z, torch.cat(blocks, 1))
    last = mlp(spec, width=8, depth=3, readout="last").eval()
    last.load_state_dict(enc.state_dict())  # the same parameters: only what is read out differs
    assert torch.equal(last(x), blocks[-1])
    with pytest.raises(ConfigError, match="readout"):
        mlp(spec, readout="mean")


def test_with_raw_puts_the_raw_features_before_the_embedding(tmp_path):
    from selfsup.cli import main

    df = mixed_frame(128)
    run = selfsup.train(selfsup.dataset_from_array(df), method="scarf", epochs=1, batch_size=64, monitor=False,
                        encoder_options=TINY, out=tmp_path / "run")
    raw = run.modality.raw_features(run.modality.to_storage(df, "input", run.spec), run.spec)
    both = run.embed(df, with_raw=True)
    assert both.shape == (128, raw.shape[1] + 64)
    assert np.allclose(both[:, :raw.shape[1]], raw, atol=1e-6) and np.allclose(both[:, raw.shape[1]:], run.embed(df))
    df.to_csv(tmp_path / "t.csv", index=False)
    assert main(["embed", str(tmp_path / "run"), "--data", f"csv:{tmp_path / 't.csv'}", "--out",
                 str(tmp_path / "z.npy"), "--with-raw"]) == 0
    assert np.allclose(np.load(tmp_path / "z.npy"), both, atol=1e-4)
    with pytest.raises(ConfigError, match="per-time-step"):
        from selfsup.run import with_raw_features
        with_raw_features(run, torch.zeros(2, 4), None, np.zeros((2, 3, 4), np.float32))


def test_eval_trees_see_the_raw_columns_beside_each_embedding(tmp_path):
    from selfsup.evaluate import beside_raw, evaluate_run, format_results, holdout_test_split

    ds = load_dataset("sklearn:breast_cancer", None, "tabular")
    run = selfsup.train(ds, method="scarf", epochs=1, batch_size=64, monitor=False, encoder_options=TINY)
    res = evaluate_run(run, ds, protocols=("trees", "linear"), finetune=False)
    trees = res["protocols"]["trees"]
    assert set(trees) == {"selfsup", "raw", "random_encoder"} and trees["raw"]["acc"] > 0.85
    assert res["trees_acc"] == trees["selfsup"]["acc"] and "(raw beside each)" in format_results(res)
    train, test, _ = holdout_test_split(ds)
    z = (np.zeros((len(train), 3), np.float32), np.ones((len(test), 3), np.float32))
    sets = beside_raw({"selfsup": z}, run, train, test)
    raw = run.modality.raw_features(train.x, run.spec)
    assert sets["raw"][0].shape == raw.shape and sets["selfsup"][0].shape == (len(train), raw.shape[1] + 3)
    assert np.array_equal(sets["selfsup"][0][:, :raw.shape[1]], raw) and (sets["selfsup"][1][:, -3:] == 1).all()


def test_sklearn_pipeline_on_numeric_table():
    from sklearn.base import clone
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline

    x, y = load_breast_cancer(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    pipe = make_pipeline(selfsup.SelfSupervisedEmbedder(method="scarf", epochs=20, batch_size=128),
                         LogisticRegression(max_iter=2000))
    pipe.fit(xtr, ytr)
    assert pipe.score(xte, yte) > 0.9
    assert clone(pipe).steps[0][1].get_params()["method"] == "scarf"
    both = selfsup.SelfSupervisedEmbedder(method="scarf", epochs=1, with_raw=True).fit(xtr).transform(xte)
    assert both.shape == (len(xte), 30 + 1024) and np.allclose(both[:, :30].mean(0), ((xte - xtr.mean(0)) /
                                                                                      xtr.std(0)).mean(0), atol=1e-4)


def test_cli_trains_and_evaluates_a_csv(tmp_path, capsys):
    from selfsup.cli import main

    df = mixed_frame(120)
    df["y"] = (df["income"] > df["income"].median()).astype(int)
    df.to_csv(tmp_path / "t.csv", index=False)
    uri = f"csv:{tmp_path / 't.csv'}?label=y&categorical=size"
    assert main(["train", "--data", uri, "--method", "scarf", "--epochs", "2", "--out", str(tmp_path / "r"),
                 "--encoder-option", "width=16", "--encoder-option", "depth=1", "--no-monitor", "--quiet",
                 "--no-eval"]) == 0
    assert main(["embed", str(tmp_path / "r"), "--out", str(tmp_path / "z.npy")]) == 0
    assert np.load(tmp_path / "z.npy").shape == (120, 16)
    assert main(["datasets"]) == 0
    listing = capsys.readouterr().out
    assert "csv" in listing and "mlbench" in listing and "label=" in listing


def test_cli_label_column_and_categorical_flags_reach_the_reader(tmp_path):
    import argparse

    from selfsup.cli import data_with_table_flags

    text = "id;age;city;y\n" + "".join(f"{i};{20 + i};{i % 3};{i % 2}\n" for i in range(30))
    p = write_csv(tmp_path / "t.csv", text)
    args = argparse.Namespace(data=f"csv:{p}?sep=;&drop=id", label_column="y", categorical="city")
    data_with_table_flags(args)
    ds = load_dataset(args.data)
    assert ds.info["columns"] == ["age", "city"] and ds.info["kinds"] == ["numeric", "categorical"]
    assert ds.train.y.tolist() == [i % 2 for i in range(30)]
    with pytest.raises(ConfigError, match="already sets label"):
        data_with_table_flags(argparse.Namespace(data=f"csv:{p}?label=id", label_column="y", categorical=None))
    with pytest.raises(ConfigError, match="needs --data"):
        data_with_table_flags(argparse.Namespace(data=None, label_column="y", categorical=None))
