"""Bad input anywhere fails through the CLI with a non-zero exit, one line naming the culprit, no traceback, and no
run directory that looks complete. Extends tests/test_cli.py (which covers a corrupt PNG, an empty folder, a
zero-byte image, a wrongly shaped array, a label file of the wrong length and NaN pixels)."""
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from selfsup.run import COMPLETE_MARKER
from selfsup.training import checkpoint as ckpt_io
from conftest import run_cli, run_cli_process

TINY = ["--encoder-option", "widths=[8,8,8,8]", "--method-option", "proj_hidden_dim=32", "--threads", "1",
        "--no-monitor", "--no-eval", "--quiet", "--batch-size", "128"]


@pytest.fixture(autouse=True)
def keep_threads():
    """`--threads 1` in an in-process CLI call must not leak into other tests."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def cli(*args):
    """The command line in this process (conftest.run_cli), warnings shown as selfsup shows them."""
    return run_cli(*args, show_warnings=True)


def assert_clean_failure(proc, out, *needles):
    assert proc.returncode not in (0, None), proc
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith("selfsup: error:"), err
    for needle in needles:
        assert str(needle) in err, (needle, err)
    assert not out.exists(), f"{out} left behind"
    partial = out.with_name(out.name + ".partial")
    assert not (partial / COMPLETE_MARKER).exists()


def png_bytes(size=12, seed=0):
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(seed).random((size, size)) * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def case_truncated_png(d):
    for i in range(4):
        (d / f"ok{i}.png").write_bytes(png_bytes(seed=i))
    (d / "cut.png").write_bytes(png_bytes(seed=9)[:60])  # valid signature and header, data cut off
    return ["--data", f"folder:{d}"], ["cut.png"]


def case_folder_without_images(d):
    (d / "notes.txt").write_text("no images here")
    (d / "data.csv").write_text("a,b\n1,2\n")
    return ["--data", f"folder:{d}"], ["no images"]


def case_zero_byte_npy(d):
    (d / "x.npy").write_bytes(b"")
    return ["--data", f"npy:{d / 'x.npy'}"], ["x.npy", "empty file"]


def case_garbage_npy(d):
    (d / "x.npy").write_bytes(b"\x93NUMPY garbage that is not an array header")
    return ["--data", f"npy:{d / 'x.npy'}"], ["x.npy", "not a valid .npy"]


def case_text_file_as_npy(d):
    (d / "x.npy").write_text("1,2,3\n4,5,6\n")
    return ["--data", f"npy:{d / 'x.npy'}"], ["x.npy", "no NumPy header"]


def case_rank1_array(d):
    np.save(d / "vec.npy", np.arange(100, dtype=np.uint8))
    return ["--data", f"npy:{d / 'vec.npy'}"], ["vec.npy", "shape (100,)"]


def case_rank5_array(d):
    np.save(d / "x5.npy", np.zeros((4, 2, 3, 8, 8), np.uint8))
    return ["--data", f"npy:{d / 'x5.npy'}"], ["x5.npy", "shape (4, 2, 3, 8, 8)"]


def case_series_rank4(d):
    np.save(d / "s.npy", np.zeros((6, 2, 3, 4), np.float32))
    return ["--data", f"npy:{d / 's.npy'}", "--modality", "timeseries"], ["s.npy", "shape (6, 2, 3, 4)"]


def case_table_rank3(d):
    np.save(d / "t.npy", np.zeros((6, 2, 3), np.float32))
    return ["--data", f"npy:{d / 't.npy'}", "--modality", "tabular"], ["t.npy", "2-D"]


def case_nan_only_series_row(d):
    x = np.random.default_rng(0).random((8, 30)).astype(np.float32)
    x[5] = np.nan
    np.save(d / "series.npy", x)
    return ["--data", f"npy:{d / 'series.npy'}", "--modality", "timeseries"], ["series.npy", "series 5"]


def case_nan_only_image(d):
    x = np.random.default_rng(0).random((8, 8, 8)).astype(np.float32)
    x[6] = np.nan
    np.save(d / "imgs.npy", x)
    return ["--data", f"npy:{d / 'imgs.npy'}"], ["imgs.npy", "image 6"]


def case_series_labels_wrong_length(d):
    np.save(d / "s.npy", np.random.default_rng(0).random((10, 20)).astype(np.float32))
    np.save(d / "y.npy", np.zeros(12, np.int64))
    return ["--data", f"npy:{d / 's.npy'}?labels={d / 'y.npy'}", "--modality", "timeseries"], \
        ["y.npy", "12 labels for 10"]


def case_labels_needing_pickle(d):
    np.save(d / "x.npy", np.zeros((10, 8, 8), np.uint8))
    np.save(d / "y.npy", np.array([{"a": 1}] * 10, dtype=object), allow_pickle=True)
    return ["--data", f"npy:{d / 'x.npy'}?labels={d / 'y.npy'}"], ["y.npy", "safely"]


def case_csv_ragged_row(d):
    (d / "t.csv").write_text("a,b,c\n1,2,3\n4,5\n7,8,9\n")
    return ["--data", f"csv:{d / 't.csv'}"], ["t.csv", "line 3"]


def case_csv_header_only(d):
    (d / "t.csv").write_text("a,b,c\n")
    return ["--data", f"csv:{d / 't.csv'}"], ["t.csv", "no data rows"]


def case_out_under_a_file(d):
    (d / "afile").write_text("")
    return ["--data", "digits", "--out", d / "afile" / "run"], ["--out"]


def case_bad_checkpoint_interval(d):
    return ["--data", "digits", "--checkpoint-every", "0"], ["--checkpoint-every"]


CASES = [case_truncated_png, case_folder_without_images, case_zero_byte_npy, case_garbage_npy, case_text_file_as_npy,
         case_rank1_array, case_rank5_array, case_series_rank4, case_table_rank3, case_nan_only_series_row, case_nan_only_image,
         case_series_labels_wrong_length, case_labels_needing_pickle,
         case_csv_ragged_row, case_csv_header_only,
         case_out_under_a_file, case_bad_checkpoint_interval]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__[5:])
def test_bad_input_fails_cleanly(tmp_path, case):
    d = tmp_path / "data"
    d.mkdir()
    args, needles = case(d)
    out = tmp_path / "run"
    if "--out" not in args:
        args = [*args, "--out", out]
    proc = cli("train", "--epochs", "1", *args, *TINY)
    assert_clean_failure(proc, out, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing created next to the data


def test_nan_only_rows_through_a_real_process(tmp_path):
    """The same guarantees from a separate `python -m selfsup` process (exit code, stderr, no traceback)."""
    x = np.random.default_rng(0).random((8, 30)).astype(np.float32)
    x[[2, 5]] = np.nan
    np.save(tmp_path / "series.npy", x)
    proc = run_cli_process("train", "--data", f"npy:{tmp_path / 'series.npy'}", "--modality", "timeseries",
                           "--epochs", "1", "--out", tmp_path / "run", *TINY)
    assert proc.returncode == 2
    assert_clean_failure(proc, tmp_path / "run", "series.npy", "series 2", "all NaN")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    """A real divergence: an absurd learning rate makes the loss NaN at step 2; the checkpoint of step 1 is kept."""
    out = tmp_path / "run"
    proc = run_cli("train", "--data", "digits", "--method", "simclr", "--epochs", "1", "--lr", "1e30",
                   "--checkpoint-every", "1", "--out", out, *TINY)
    assert_clean_failure(proc, out, "loss became nan at step 2", "--lr", "last good checkpoint (step 1)",
                         "run.partial")
    ckpt = ckpt_io.load(ckpt_io.checkpoint_file(tmp_path / "run.partial"))
    assert ckpt.step == 1 and not ckpt.state["position"]["finished"]
    weights = [v for k, v in ckpt.tensors.items() if k.startswith("model/") and v.is_floating_point()]
    assert weights and all(bool(v.isfinite().all()) for v in weights)
    assert not (tmp_path / "run.partial" / COMPLETE_MARKER).exists()


def test_injected_non_finite_loss_later_in_training(tmp_path, monkeypatch):
    """The documented fault-injection hook (SELFSUP_FAULT_NONFINITE_STEP) takes the same path at a chosen step."""
    from selfsup.training.loop import FAULT_NONFINITE_STEP

    monkeypatch.setenv(FAULT_NONFINITE_STEP, "8")
    out = tmp_path / "run"
    proc = cli("train", "--data", "digits", "--epochs", "2", "--checkpoint-every", "3", "--out", out, *TINY)
    assert_clean_failure(proc, out, "loss became nan at step 8", "last good checkpoint (step 6)")
    assert ckpt_io.load(ckpt_io.checkpoint_file(tmp_path / "run.partial")).step == 6
    # the kept checkpoint resumes (the fault is gone) and the run completes
    monkeypatch.delenv(FAULT_NONFINITE_STEP)
    proc = cli("train", "--resume", out, "--quiet", "--no-eval", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"]["resumed_from_step"] == 6 and (out / COMPLETE_MARKER).exists()


def test_full_disk_is_reported_before_training(tmp_path, monkeypatch):
    import selfsup.training.session as session

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(session.shutil, "disk_usage", lambda p: usage._replace(free=60 * 2**20))
    monkeypatch.setattr(session, "run_loop", lambda *a, **k: pytest.fail("training started"))
    out = tmp_path / "run"
    proc = cli("train", "--data", "digits", "--epochs", "1", "--out", out, "--encoder-option", "widths=[64,128,256,512]",
               "--threads", "1", "--no-monitor", "--no-eval", "--quiet")
    assert_clean_failure(proc, out, "--out", "checkpoints and the run need")
    assert not out.with_name("run.partial").exists()


def test_resume_errors_are_one_line(tmp_path):
    out = tmp_path / "nothing"
    assert_clean_failure(cli("train", "--resume", out), out, "no checkpoint")
    proc = cli("train", "--resume", out, "--lr", "0.1")
    assert_clean_failure(proc, out, "drop --lr")
    (tmp_path / "interrupted.partial" / "checkpoint").mkdir(parents=True)
    ckpt_io.checkpoint_file(tmp_path / "interrupted.partial").write_bytes(b"\x00" * 100)
    assert_clean_failure(cli("train", "--resume", tmp_path / "interrupted"), tmp_path / "interrupted",
                         "not a selfsup checkpoint")
    # a new run refuses to overwrite an interrupted one
    assert_clean_failure(cli("train", "--out", tmp_path / "interrupted", *TINY), tmp_path / "interrupted",
                         "interrupted run", "--resume")


def test_collapse_is_warned_about(tmp_path, capsys, monkeypatch):
    """A collapsed representation (the monitor's per-dimension std near zero) is reported once on stderr and in
    summary.json; training itself goes on."""
    import selfsup
    from selfsup.training import session

    from selfsup.training.hooks import EpochHook

    class Collapsed(EpochHook):
        def __call__(self, epoch, method):
            return {"embedding_std": 1e-5, "collapsed": True}

    def collapsed_monitor(cfg, dataset, resolved, device, encoder):
        return [Collapsed()]

    monkeypatch.setattr(session, "epoch_hooks", collapsed_monitor)
    run = selfsup.train("digits", epochs=2, batch_size=256, encoder_options={"widths": [8, 8, 8, 8]},
                        method_options={"proj_hidden_dim": 32}, out=tmp_path / "run", threads=1)
    err = capsys.readouterr().err
    assert err.count("embeddings collapsed at epoch 0") == 1 and "epoch 1" not in err
    assert json.loads((tmp_path / "run" / COMPLETE_MARKER).read_text())["warnings"] == run.summary["warnings"]


def test_a_fifo_named_like_an_image_is_not_listed(tmp_path):
    """A FIFO would block the decoder forever: the folder source lists regular files (and links to them) only."""
    import os

    from selfsup.modalities.image.encoded import list_images

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(png_bytes())
    (tmp_path / "y.png").write_bytes(png_bytes(seed=1))
    os.mkfifo(tmp_path / "fifo.png")
    os.symlink(tmp_path / "y.png", tmp_path / "link.png")
    names = [os.path.relpath(p, tmp_path) for p in list_images(tmp_path)]
    assert names == [os.path.join("a", "x.png"), "link.png", "y.png"]


def test_artifacts_get_the_mode_of_the_umask(tmp_path):
    import os

    import torch

    from selfsup.artifacts import save_tensors, write_json

    previous = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"a": 1})
        save_tensors(tmp_path / "a.safetensors", {"w": torch.zeros(2)})  # safetensors' own writer: 0600 unless set
        os.umask(0o077)
        write_json(tmp_path / "b.json", {"b": 1})
        save_tensors(tmp_path / "b.safetensors", {"w": torch.zeros(2)})
    finally:
        os.umask(previous)
    for name in ("a.json", "a.safetensors"):  # readable by others: a report or encoder can be shared
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    for name in ("b.json", "b.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name


@pytest.mark.parametrize("command", ["compare", "prepare"])
def test_unwritable_outputs_are_one_line_errors(tmp_path, command):
    """An output the system refuses (a folder that cannot hold files, a path that is a file) is named in one line,
    exit status 2, not an internal error."""
    if command == "compare":
        run = tmp_path / "run"
        assert cli("train", "--data", "digits", "--epochs", "1", "--out", run, *TINY).returncode == 0
        target = "/proc/c.html"
        proc = cli("compare", run, run, "--html", target)
    else:
        target = tmp_path / "afile"
        target.write_text("")
        (tmp_path / "imgs").mkdir()
        for i in range(4):
            (tmp_path / "imgs" / f"{i}.png").write_bytes(png_bytes(seed=i))
        proc = cli("prepare", f"folder:{tmp_path / 'imgs'}", "--out", target, "--workers", "1")
    assert proc.returncode == 2, proc
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("selfsup: error:") and str(target) in err, err


def test_prepare_size_zero_is_refused_not_taken_as_the_default(tmp_path):
    (tmp_path / "imgs").mkdir()
    for i in range(4):
        (tmp_path / "imgs" / f"{i}.png").write_bytes(png_bytes(seed=i))
    proc = cli("prepare", f"folder:{tmp_path / 'imgs'}", "--out", tmp_path / "c", "--size", "0", "--workers", "1")
    assert proc.returncode == 2 and "--size 0" in proc.stderr and not (tmp_path / "c").exists(), proc


@pytest.mark.parametrize("command", ["train", "resume", "prepare", "cache"])
def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path, command, monkeypatch):
    """`train --out RUN`, `--resume RUN`, `prepare --out DIR` and `train --cache DIR` hold RUN.lock / DIR.lock while
    they write: a second writer gets one line naming the option, the folder and the holder's pid, and leaves the
    folder and the holder's lock as they were."""
    import os

    from selfsup.artifacts import exclusive_lock

    target = tmp_path / "out"
    if command in ("prepare", "cache"):
        (tmp_path / "imgs").mkdir()
        for i in range(4):
            (tmp_path / "imgs" / f"{i}.png").write_bytes(png_bytes(seed=i))
        args = ["prepare", f"folder:{tmp_path / 'imgs'}", "--out", target, "--workers", "1"] if command == "prepare" \
            else ["train", "--data", f"folder:{tmp_path / 'imgs'}", "--cache", target, "--out", tmp_path / "run", *TINY]
    elif command == "resume":  # an interrupted run to resume
        from selfsup.training.loop import FAULT_NONFINITE_STEP

        monkeypatch.setenv(FAULT_NONFINITE_STEP, "5")
        assert cli("train", "--data", "digits", "--epochs", "2", "--checkpoint-every", "3", "--out", target,
                   *TINY).returncode == 2
        monkeypatch.delenv(FAULT_NONFINITE_STEP)
        args = ["train", "--resume", target]
    else:
        args = ["train", "--data", "digits", "--epochs", "1", "--out", target, *TINY]
    with exclusive_lock(target, "--out"):
        proc = cli(*args)
        assert (tmp_path / "out.lock").read_text() == str(os.getpid())
    assert proc.returncode == 2, proc
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and f"pid {os.getpid()}" in err and str(target) in err, err
    option = {"cache": "--cache", "resume": "--resume"}.get(command, "--out")
    assert err.startswith(f"selfsup: error: {option} {target}:"), err
    left = {"prepare": ["imgs"], "cache": ["imgs"], "resume": ["out.partial"], "train": []}[command]
    assert sorted(p.name for p in tmp_path.iterdir()) == left


def test_a_lock_left_by_a_killed_writer_does_not_block(tmp_path):
    """The kernel drops a lock when its holder dies: the file a kill -9 left behind is taken over, then removed."""
    (tmp_path / "run.lock").write_text("999999")
    proc = cli("train", "--data", "digits", "--epochs", "1", "--out", tmp_path / "run", *TINY)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def fill_disk_after(monkeypatch, writes: int, suffix: str = ""):
    """A disk that fills up: after `writes` atomic writes of files ending in `suffix`, every such write goes to
    /dev/full (ENOSPC), as a full disk answers a write."""
    import os

    import selfsup.artifacts as artifacts

    real = artifacts.temporary_beside
    count = {"n": 0}

    def beside(path):
        if str(path).endswith(suffix):
            count["n"] += 1
            if count["n"] > writes:
                fd, tmp = real(path)
                os.close(fd)
                return os.open("/dev/full", os.O_WRONLY), tmp
        return real(path)
    monkeypatch.setattr(artifacts, "temporary_beside", beside)


def test_a_disk_that_fills_during_training_keeps_the_last_checkpoint_and_resumes(tmp_path, monkeypatch):
    """ENOSPC at the third checkpoint: one line naming the file, the size it needed, the checkpoint kept and the
    command that continues; after space is freed the resumed run equals an uninterrupted one bit for bit."""
    import torch
    from safetensors.torch import load_file

    args = ["--data", "digits", "--epochs", "3", "--checkpoint-every", "3", "--batch-size", "256", *TINY[:-2]]
    assert cli("train", *args, "--out", tmp_path / "ref").returncode == 0
    fill_disk_after(monkeypatch, 2, ".safetensors")
    out = tmp_path / "run"
    proc = cli("train", *args, "--out", out)
    assert_clean_failure(proc, out, "checkpoint.safetensors: No space left on device (writing", "MiB)",
                         "last good checkpoint (step 6)", f"selfsup train --resume {out}")
    assert ckpt_io.load(ckpt_io.checkpoint_file(tmp_path / "run.partial")).step == 6
    assert not [p for p in (tmp_path / "run.partial").rglob("*.tmp")]
    monkeypatch.undo()
    proc = cli("train", "--resume", out, "--quiet", "--no-eval", "--json")
    assert proc.returncode == 0, proc.stderr
    for name in ("encoder.safetensors", "method.safetensors"):
        a, b = load_file(str(tmp_path / "ref" / name)), load_file(str(out / name))
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.parametrize("command", ["embed", "export", "report"])
def test_a_full_disk_names_the_output_and_leaves_nothing_half_written(tmp_path, monkeypatch, command):
    run = tmp_path / "run"
    assert cli("train", "--data", "digits", "--epochs", "1", "--out", run, *TINY).returncode == 0
    fill_disk_after(monkeypatch, 0)
    target = {"embed": tmp_path / "z.npy", "export": tmp_path / "enc.pt", "report": run / "report.html"}[command]
    args = {"embed": ["embed", run, "--out", target], "export": ["export", run, "--format", "torchscript", "--out",
                                                                  target], "report": ["report", run]}[command]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    proc = cli(*args)
    assert proc.returncode == 2, proc
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and str(target) in err and "No space left on device" in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_metrics_log_on_a_full_disk_names_its_file_and_still_closes():
    """metrics.jsonl on a full disk (/dev/full answers every write with ENOSPC): the write names the file, and
    closing it afterwards (training's `finally`) does not replace that error with an unnamed one."""
    from pathlib import Path

    from selfsup.training.loggers import MetricsLog

    log = MetricsLog(Path("/dev/full"))
    with pytest.raises(OSError) as caught:
        log.write({"step": 1, "loss": 0.5})
    assert caught.value.filename == "/dev/full" and "writing" in caught.value.strerror
    log.close()
