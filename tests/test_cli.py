"""The command line: help, listings, folder/npy sources, clear one-line errors, embed == API embed."""
import json

import numpy as np
import pytest
from PIL import Image

import selfsup
from conftest import run_cli

SMALL = ["--encoder-option", "widths=[16,32,32,32]"]


def assert_one_line_error(proc, *needles):
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert str(needle) in err, (needle, err)


@pytest.mark.parametrize("command", ["train", "embed", "eval", "methods", "encoders", "datasets"])
def test_every_command_has_help_with_example(command):
    proc = run_cli(command, "--help")
    assert proc.returncode == 0 and "example" in proc.stdout


def test_listings():
    for command, expected in (("methods", "simclr"), ("encoders", "convnet4"), ("datasets", "fashion-mnist")):
        proc = run_cli(command, "--json")
        assert proc.returncode == 0
        assert expected in {row["name"] for row in json.loads(proc.stdout)}


def write_pngs(folder, n=24, size=12, corrupt=None):
    rng = np.random.default_rng(0)
    for i in range(n):
        cls = folder / f"class{i % 2}"
        cls.mkdir(parents=True, exist_ok=True)
        img = (rng.random((size, size)) * 255).astype(np.uint8)
        img[: size // 2] = 255 * (i % 2)
        Image.fromarray(img).save(cls / f"img{i}.png")
    if corrupt:
        (folder / "class0" / corrupt).write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")


def test_folder_of_pngs_trains_and_evaluates(tmp_path):
    write_pngs(tmp_path / "imgs")
    proc = run_cli("train", "--data", f"folder:{tmp_path / 'imgs'}", "--method", "simclr", "--epochs", "2",
                   "--batch-size", "8", "--out", tmp_path / "run", "--json", "--no-report", *SMALL)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["summary"]["train_samples"] == 24
    assert 0 <= out["eval"]["knn_acc"] <= 1 and 0 <= out["eval"]["linear_acc"] <= 1
    for name in ("config.yaml", "encoder.safetensors", "metrics.jsonl", "summary.json", "eval.json"):
        assert (tmp_path / "run" / name).exists()


def test_corrupt_image_names_the_file(tmp_path):
    write_pngs(tmp_path / "imgs", corrupt="broken.png")
    proc = run_cli("train", "--data", f"folder:{tmp_path / 'imgs'}", "--epochs", "1", "--out", tmp_path / "run")
    assert_one_line_error(proc, "broken.png")
    assert not (tmp_path / "run").exists()


def test_empty_folder_and_zero_byte_file(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("train", "--data", f"folder:{tmp_path / 'empty'}", "--out", tmp_path / "r"),
                          "no images")
    write_pngs(tmp_path / "imgs")
    (tmp_path / "imgs" / "class1" / "zero.png").write_bytes(b"")
    assert_one_line_error(run_cli("train", "--data", f"folder:{tmp_path / 'imgs'}", "--out", tmp_path / "r"),
                          "zero.png")
    assert not (tmp_path / "r").exists()


def test_wrongly_shaped_array_and_bad_labels(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((10, 5), np.uint8))
    assert_one_line_error(run_cli("train", "--data", f"npy:{tmp_path / 'flat.npy'}", "--out", tmp_path / "r"),
                          "flat.npy", "shape")
    np.save(tmp_path / "x.npy", np.zeros((10, 8, 8), np.uint8))
    np.save(tmp_path / "y.npy", np.zeros(7, np.int64))
    assert_one_line_error(run_cli("train", "--data", f"npy:{tmp_path / 'x.npy'}?labels={tmp_path / 'y.npy'}",
                                  "--out", tmp_path / "r"), "y.npy", "7 labels for 10")
    x = np.random.default_rng(0).random((10, 8, 8)).astype(np.float32)
    x[3, 2, 2] = np.nan
    np.save(tmp_path / "nan.npy", x)
    assert_one_line_error(run_cli("train", "--data", f"npy:{tmp_path / 'nan.npy'}", "--out", tmp_path / "r"),
                          "nan.npy", "image 3")
    assert not (tmp_path / "r").exists()


def test_bad_arguments_are_one_line(tmp_path):
    assert_one_line_error(run_cli("train", "--method", "nope", "--out", tmp_path / "r"), "nope")
    assert_one_line_error(run_cli("train", "--method-option", "bogus=1", "--out", tmp_path / "r"), "bogus")
    assert_one_line_error(run_cli("train", "--data", "nosuchsource", "--out", tmp_path / "r"), "nosuchsource")
    assert_one_line_error(run_cli("eval", tmp_path / "missing"), "missing")


def test_npy_source_and_cli_embed_match_api(tmp_path, digits_run):
    out = tmp_path / "emb.npy"
    proc = run_cli("embed", digits_run, "--data", "digits", "--split", "test", "--out", out)
    assert proc.returncode == 0, proc.stderr
    from_cli = np.load(out)
    ds = selfsup.load_dataset("digits")
    from_api = selfsup.load(digits_run).embed(ds.test.x.numpy()[:, 0])  # raw N x H x W uint8
    assert from_cli.shape == from_api.shape
    np.testing.assert_allclose(from_cli, from_api, rtol=1e-5, atol=1e-5)


def test_eval_json_has_baselines(digits_run):
    proc = run_cli("eval", digits_run, "--data", "digits", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert {"knn_acc", "linear_acc", "baselines"} <= set(res)
    assert set(res["baselines"]) == {"raw", "random_encoder"}
    assert res["baselines"]["raw"]["knn"] > 0.8  # raw digits pixels are a strong baseline


def test_existing_output_is_refused(tmp_path, digits_run):
    proc = run_cli("train", "--out", digits_run, "--epochs", "1")
    assert_one_line_error(proc, "already exists")


def test_config_reproduces_run(tmp_path, digits_run):
    """The run's config.yaml trains the same losses bit for bit, also with the per-epoch monitor switched on (the
    monitor reads the encoder, never the training's random draws)."""
    proc = run_cli("train", "--config", digits_run / "config.yaml", "--out", tmp_path / "again", "--no-eval",
                   "--quiet", "--monitor")
    assert proc.returncode == 0, proc.stderr
    a = [json.loads(l)["loss"] for l in open(digits_run / "metrics.jsonl") if '"step"' in l]
    b = [json.loads(l)["loss"] for l in open(tmp_path / "again" / "metrics.jsonl") if '"step"' in l]
    assert a == b


def test_eval_all_protocols_json(digits_run):
    proc = run_cli("eval", digits_run, "--data", "digits", "--protocols", "knn,linear,kmeans,fewshot,svm",
                   "--no-finetune", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert set(res["protocols"]) == {"knn", "linear", "kmeans", "fewshot", "svm"}
    for proto, by_name in res["protocols"].items():
        assert set(by_name) == {"selfsup", "raw", "random_encoder"}, proto
    assert {"nmi", "ari", "acc"} <= set(res["protocols"]["kmeans"]["selfsup"])
    assert set(res["protocols"]["fewshot"]["raw"]) == {"0.01", "0.1"}
    assert res["protocols"]["fewshot"]["raw"]["0.1"]["n_labels"] >= 130
    assert 0 < res["svm_acc"] <= 1
    assert set(res["baselines"]["raw"]) == {"knn", "linear", "kmeans", "fewshot", "svm"}


def test_compare_runs(digits_run):
    proc = run_cli("compare", digits_run, digits_run, "--markdown")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("| run | method") and len(lines) == 4


def test_progress_lines_when_output_is_not_a_terminal(tmp_path):
    """With stderr a pipe (a cluster job, nohup, CI) training writes plain progress lines: one every
    --log-interval seconds (at the next logged step) and one per epoch; --quiet silences them."""
    args = ["train", "--data", "digits", "--epochs", "2", "--batch-size", "32", "--threads", "1", "--no-eval",
            "--no-monitor", "--encoder-option", "widths=[8,8,8,8]", "--method-option", "proj_hidden_dim=32",
            "--log-interval", "0.001"]
    proc = run_cli(*args, "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("selfsup: epoch")]
    steps = [line for line in lines if " step " in line]
    assert len(steps) >= 5, proc.stderr
    assert "/84 (" in steps[-1] and "loss " in steps[-1] and "samples/s" in steps[-1] and "ETA" in steps[-1]
    assert sum(" done: mean loss " in line for line in lines) == 2
    quiet = run_cli(*args, "--out", tmp_path / "quiet", "--quiet")
    assert quiet.returncode == 0 and "selfsup: epoch" not in quiet.stderr, quiet.stderr


def test_augment_flag_sets_view_options(tmp_path):
    """`--augment KEY=VALUE` reaches the view maker (a local crop the encoder cannot take is refused, naming it) and
    is recorded in the run's resolved augmentation over the data source's own view options."""
    import yaml

    common = ["train", "--data", "digits", "--epochs", "1", "--threads", "1", "--no-eval", "--no-monitor", "--quiet",
              "--encoder-option", "widths=[8,8,8,8]"]
    assert_one_line_error(run_cli(*common, "--method", "dino", "--augment", "local_size=4", "--out", tmp_path / "a"),
                          "1x4x4")
    proc = run_cli(*common, "--method", "simclr", "--augment", "crop_scale=[0.8,1.0]", "flip_p=0.2", "--augment",
                   "flip_p=0.5", "--out", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    assert config["resolved"]["augmentation"] == {"crop_scale": [0.8, 1.0], "flip_p": 0.5}
    assert_one_line_error(run_cli(*common, "--augment", "flip_p", "--out", tmp_path / "c"), "--augment")


def test_run_cli_catches_what_a_process_would_print(monkeypatch):
    """The in-process runner of these tests sees what a subprocess's pipes would: output written below Python, the
    exit code, and warnings shown as a fresh interpreter shows them (a ResourceWarning it hides)."""
    import os
    import warnings

    from selfsup import cli

    def command(argv):
        os.write(2, b"written to descriptor 2\n")
        print("printed")
        warnings.warn("a user warning", UserWarning)
        warnings.warn("a resource warning", ResourceWarning)
        return 3

    monkeypatch.setattr(cli, "run_command", command)
    proc = run_cli("train", show_warnings=True)
    assert proc.returncode == 3 and proc.stdout == "printed\n", proc
    assert "written to descriptor 2" in proc.stderr and "a user warning" in proc.stderr, proc.stderr
    assert "a resource warning" not in proc.stderr
    assert "a user warning" not in run_cli("train").stderr  # PYTHONWARNINGS=ignore


def test_every_train_option_is_a_flag_declared_with_the_config(tmp_path):
    """`selfsup train`'s flags are generated from TrainConfig's fields: each has its flag and help in --help, and a
    flag given reaches the run's config.yaml (here two that no hand-written flag had: --log-every and
    --no-batched-views)."""
    from dataclasses import fields

    import yaml

    from selfsup.config import TrainConfig, option_flag

    help_text = " ".join(run_cli("train", "--help").stdout.split())
    for f in fields(TrainConfig):
        assert f.metadata["help"] and option_flag(f.name) in help_text, f.name
    proc = run_cli("train", "--data", "digits", "--epochs", "1", "--log-every", "3", "--no-batched-views",
                   "--no-eval", "--no-monitor", "--quiet", "--threads", "1", *SMALL, "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["train"]
    assert config["log_every"] == 3 and config["batched_views"] is False and config["monitor"] is False
    assert config["encoder_options"] == {"widths": [16, 32, 32, 32]}


def test_the_command_freezes_the_heap_before_exit_and_still_runs_the_exit_handlers():
    """`python -m selfsup` (and the console script: the same `entry`) collects its garbage, then exempts what survives
    from the collections of interpreter shutdown (gc.freeze, about 1 s less at exit); atexit handlers still run after
    it (torchrun's process group is left in one). A fresh interpreter has nothing frozen (the control)."""
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    code = ("import atexit, gc, runpy, sys; print('before', gc.get_freeze_count()); sys.argv = ['selfsup', 'methods']; "
            "atexit.register(lambda: print('at exit', gc.get_freeze_count() > 0)); "
            "runpy.run_module('selfsup', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines[0] == "before 0" and lines[-1] == "at exit True", done.stderr[-2000:]
    scripts = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["selfsup"] == "selfsup.cli:entry"
