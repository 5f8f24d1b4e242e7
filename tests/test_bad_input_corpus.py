"""The corpus of bad and awkward inputs: every case gives one line naming the culprit with exit status 2,
or the stated behaviour for awkward-but-valid input; no traceback anywhere. Inputs are generated at test time.
Add the cases of every new source and modality here."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import selfsup
from selfsup.run import COMPLETE_MARKER
from test_bad_inputs import TINY, cli

FAST = ["--epochs", "1", *TINY]


def assert_error(proc, *needles, status=2):
    """Exit `status`, exactly one line on stderr starting 'selfsup: error:', naming every needle, no traceback."""
    err = proc.stderr.strip()
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith("selfsup: error:"), err
    for needle in needles:
        assert str(needle) in err, (needle, err)


def save_npy(path, array):
    np.save(path, array)
    return path


def images(n=64, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size)).astype(np.uint8)


# ---- options: type, range, finiteness (one validation layer for CLI, YAML and Python) ----

@pytest.mark.parametrize("args,needles", [
    (["--seed", "-1"], ["--seed", "-1"]),
    (["--threads", "0"], ["--threads", "0"]),
    (["--aug-strength", "-1"], ["--aug-strength", "-1"]),
    (["--lr", "inf"], ["--lr", "inf"]),
    (["--weight-decay", "nan"], ["--weight-decay", "nan"]),
    (["--method-option", "temperature=abc"], ["--method-option temperature", "a finite number", "'abc'"]),
    (["--method-option", "temperature=0"], ["temperature=0", "simclr", "> 0"]),
    (["--encoder-option", "nosuch=1"], ["--encoder-option", "convnet4", "nosuch"]),
    (["--encoder-option", "widths=[-4,8,8,8]"], ["--encoder-option", "convnet4", "widths"]),
], ids=["seed", "threads", "aug-strength", "lr-inf", "wd-nan", "temperature-abc", "temperature-0", "encoder-nosuch",
        "encoder-negative-width"])
def test_bad_options_are_named(tmp_path, args, needles):
    out = tmp_path / "run"
    base = [a for a in FAST if a not in ("--encoder-option", "widths=[8,8,8,8]")] \
        if any(a == "--encoder-option" for a in args) else FAST
    proc = cli("train", "--data", "digits", "--out", out, *base, *args)
    assert_error(proc, *needles)
    assert not out.exists() and not out.with_name("run.partial").exists()


def test_config_files(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    assert_error(cli("train", "--config", binary, "--out", tmp_path / "r1"), str(binary), "not UTF-8")
    words = tmp_path / "words.yaml"
    words.write_text("epochs: many\n")
    assert_error(cli("train", "--config", words, "--out", tmp_path / "r2"), "--epochs", "an integer", "'many'")
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: [1, 2\nmethod: simclr\n")
    assert_error(cli("train", "--config", broken, "--out", tmp_path / "r3"), str(broken), "line")


def test_python_api_validates_the_same_way(tmp_path):
    with pytest.raises(selfsup.SelfSupError, match="--epochs: expected an integer"):
        selfsup.train("digits", epochs="many")
    with pytest.raises(selfsup.SelfSupError, match="--method-option temperature"):
        selfsup.train("digits", epochs=1, method_options={"temperature": float("nan")})


# ---- data sources ----

@pytest.mark.parametrize("query,needles", [
    ("size=abc", ["size='abc'", "whole number"]),
    ("size=0", ["size=0", "between 4"]),
    ("size=-8", ["size=-8", "between 4"]),
    ("mode=XYZ", ["mode='XYZ'", "mode=L", "mode=RGB"]),
    ("colour=red", ["unknown option", "colour"]),
])
def test_folder_options(tmp_path, query, needles):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(images(1, 12, i)[0]).save(folder / f"{i}.png")
    assert_error(cli("train", "--data", f"folder:{folder}?{query}", "--out", tmp_path / "run", *FAST), *needles)


def test_decompression_bomb_is_refused_and_can_be_allowed(tmp_path, monkeypatch):
    """Pillow's limit is ~179 megapixels; the test lowers it instead of writing a 400-megapixel file."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(images(1, 64, i)[0]).save(folder / f"{i}.png")  # 4096 pixels > 2 x 1000
    assert_error(cli("train", "--data", f"folder:{folder}", "--out", tmp_path / "run", *FAST), "0.png",
                 "decompression bomb", "max_pixels")
    proc = cli("train", "--data", f"folder:{folder}?max_pixels=5000", "--out", tmp_path / "ok", *FAST, "--no-eval")
    assert proc.returncode == 0, proc.stderr
    assert Image.MAX_IMAGE_PIXELS == 1000  # the raised limit does not outlive the read


def test_too_few_samples(tmp_path):
    one = save_npy(tmp_path / "one.npy", images(1, 8))
    assert_error(cli("train", "--data", f"npy:{one}", "--out", tmp_path / "run", *FAST), "1 training sample",
                 "at least 2")
    csv = tmp_path / "one.csv"
    csv.write_text("a,b,c\n1,2,3\n")
    assert_error(cli("train", "--data", f"csv:{csv}", "--out", tmp_path / "run2", *FAST), "1 training sample")


def test_tiny_rgb_images_are_described_as_given(tmp_path):
    rgb = save_npy(tmp_path / "rgb.npy", np.zeros((10, 1, 1, 3), np.uint8))
    assert_error(cli("train", "--data", f"npy:{rgb}", "--out", tmp_path / "run", *FAST), "1x1x3", "at least 4x4")


# ---- labels: evaluation refuses what it cannot classify, training does not care ----

@pytest.mark.parametrize("labels,needle", [
    (np.random.default_rng(0).random(64), "continuous"),
    (np.zeros(64, np.int64), "same class"),
], ids=["float-labels", "single-class"])
def test_label_problems_skip_evaluation_and_leave_a_usable_run(tmp_path, labels, needle):
    x = save_npy(tmp_path / "x.npy", images(64))
    y = save_npy(tmp_path / "y.npy", labels)
    out = tmp_path / "run"
    proc = cli("train", "--data", f"npy:{x}?labels={y}", "--out", out, "--epochs", "1",
               *[a for a in TINY if a != "--no-eval"], "--no-report")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("evaluation skipped:")]
    assert len(skipped) == 1 and needle in skipped[0], proc.stdout
    assert (out / COMPLETE_MARKER).exists() and not (out / "eval.json").exists()
    assert selfsup.load(out).embed(images(3)).shape[0] == 3  # complete and usable
    assert_error(cli("eval", out, "--data", f"npy:{x}?labels={y}"), needle)


# ---- embed / eval against the run's spec ----

def test_embed_refuses_data_of_another_modality_and_a_folder_as_output(tmp_path, digits_run):
    assert_error(cli("embed", digits_run, "--data", "ucr:GunPoint", "--out", tmp_path / "z.npy"),
                 "timeseries data", "image data")
    (tmp_path / "adir").mkdir()
    assert_error(cli("embed", digits_run, "--out", tmp_path / "adir"), "is a folder")


def test_embed_other_image_size_is_refused_or_resized(tmp_path):
    big = save_npy(tmp_path / "big.npy", images(64, 16))
    run = tmp_path / "run16"
    assert cli("train", "--data", f"npy:{big}", "--out", run, *FAST).returncode == 0
    small = save_npy(tmp_path / "small.npy", images(10, 8))
    assert_error(cli("embed", run, "--data", f"npy:{small}", "--out", tmp_path / "z.npy"), "8x8", "16x16", "--resize")
    proc = cli("embed", run, "--data", f"npy:{small}", "--out", tmp_path / "z.npy", "--resize")
    assert proc.returncode == 0 and "resized from 8x8 to 16x16" in proc.stderr, proc.stderr
    assert np.load(tmp_path / "z.npy").shape[0] == 10


def test_embed_table_columns_are_matched_by_name(tmp_path):
    rng = np.random.default_rng(0)
    train = tmp_path / "train.csv"
    train.write_text("a,b,c\n" + "\n".join(",".join(f"{v:.3f}" for v in row) for row in rng.random((80, 3))))
    run = tmp_path / "table"
    proc = cli("train", "--data", f"csv:{train}", "--out", run, "--epochs", "1", "--threads", "1", "--no-monitor",
               "--no-eval", "--quiet", "--batch-size", "32")
    assert proc.returncode == 0, proc.stderr
    swapped = tmp_path / "swapped.csv"  # same columns in another order, plus one extra
    swapped.write_text("c,extra,a,b\n" + "\n".join(",".join(f"{v:.3f}" for v in row) for row in rng.random((20, 4))))
    proc = cli("embed", run, "--data", f"csv:{swapped}", "--out", tmp_path / "z.npy")
    assert proc.returncode == 0 and "ignored column(s) not seen in training: extra" in proc.stderr, proc.stderr
    assert_error(cli("embed", run, "--data", f"csv:{swapped}", "--out", tmp_path / "z2.npy", "--strict"),
                 "extra", "--strict")
    missing = tmp_path / "missing.csv"
    missing.write_text("a,extra\n" + "\n".join(f"{v:.3f},{v:.2f}" for v in rng.random(20)))
    assert_error(cli("embed", run, "--data", f"csv:{missing}", "--out", tmp_path / "z3.npy"), "b, c", "missing")


# ---- interruption, resume, internal errors ----

def test_ctrl_c_during_imports_exits_130_in_one_line(tmp_path):
    # SIGINT at its default in the child: a shell's background job inherits it ignored, and Python then installs no
    # KeyboardInterrupt handler at all
    proc = subprocess.Popen([sys.executable, "-m", "selfsup", "train", "--data", "digits", "--out", tmp_path / "run",
                             "--epochs", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(0.3)  # the package imports torch lazily, inside the command's error handling
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    # torch's import runs with SIGINT held back (cli.import_torch_shielded): a signal landing inside its C++ would
    # otherwise abort the process or end it by SIGINT rather than by selfsup's one line and 130
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip().splitlines() == ["selfsup: interrupted"], err


def test_a_bare_interrupt_prints_a_word(monkeypatch):
    from selfsup import cli as cli_module

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli_module.COMMANDS, "methods", interrupted)
    proc = cli("methods")
    assert proc.returncode == 130 and proc.stderr.strip() == "selfsup: interrupted", proc


def test_unexpected_errors_are_one_line_with_their_own_status(monkeypatch):
    from selfsup import cli as cli_module

    def broken(args):
        raise RuntimeError("something inside went wrong\nsecond line")

    monkeypatch.setitem(cli_module.COMMANDS, "methods", broken)
    proc = cli("methods")
    assert proc.returncode == cli_module.INTERNAL_ERROR == 3, proc
    err = proc.stderr.strip()
    assert err.splitlines() == [err] and "internal error: RuntimeError: something inside went wrong" in err
    assert "--debug" in err and "Traceback" not in err


LOST_PEER_THEN_SIGTERM = """
import os, signal, sys
from selfsup import cli

def lost_peer(args):  # a collective fails on a killed peer; torchrun's agent sends SIGTERM during the clean-up
    try:
        raise RuntimeError("[gloo] Connection reset by peer")
    finally:
        os.kill(os.getpid(), signal.SIGTERM)

cli.COMMANDS["methods"] = lost_peer
if sys.argv[1] == "without-the-handler":
    import contextlib
    cli.sigterm_as_interrupt = contextlib.nullcontext
sys.exit(cli.main(["methods"]))
"""


def test_sigterm_while_a_failure_unwinds_still_reports_the_failure():
    """torchrun stops the group with SIGTERM as soon as a worker dies: the worker whose collective failed on the
    lost peer says so in its one line, where with the default action it would vanish without a word (the
    negative control, the same process without selfsup's handler)."""
    rank0 = {**os.environ, "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}  # as torchrun starts it
    said = subprocess.run([sys.executable, "-c", LOST_PEER_THEN_SIGTERM, "with-the-handler"], capture_output=True,
                          text=True, timeout=120, env=rank0)
    assert said.returncode == 2, said
    assert said.stderr.strip().startswith("selfsup: error: another process of the torchrun group stopped ([gloo] "
                                          "Connection reset by peer)") and len(said.stderr.splitlines()) == 1, said
    silent = subprocess.run([sys.executable, "-c", LOST_PEER_THEN_SIGTERM, "without-the-handler"],
                            capture_output=True, text=True, timeout=120, env=rank0)
    assert silent.returncode == -signal.SIGTERM and silent.stderr == "", silent


def forked_child_ends_at_once_by_sigterm() -> bool:
    """Fork a sleeping child and terminate it at once (before the interpreter's after-fork set-up, where a Python-level
    handler would drop the signal): whether it died of SIGTERM."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(20,))
    child.start()
    child.terminate()
    child.join(30)
    return child.exitcode == -signal.SIGTERM


def test_sigterm_stops_a_command_with_one_line_and_its_status_and_spares_forked_children(monkeypatch):
    """SIGTERM ends a command as Ctrl-C does (one line, 128 + 15). A child forked meanwhile and terminated at once
    dies of it, whoever forks it: the main thread under the command's handler, the main thread under the training
    loop's (which keeps it: a first SIGTERM asks for a stop, a second is Terminated), or another thread."""
    import threading

    from selfsup import cli as cli_module
    from selfsup.termination import Terminated
    from selfsup.training.loop import StopSignals

    assert threading.current_thread() is threading.main_thread()  # else the signal below would end this process
    before = signal.getsignal(signal.SIGTERM)
    seen = {}

    def terminated(args):
        seen["main thread"] = all(forked_child_ends_at_once_by_sigterm() for _ in range(3))
        loop = StopSignals(enabled=True)
        try:
            seen["under the loop"] = all(forked_child_ends_at_once_by_sigterm() for _ in range(3))
            os.kill(os.getpid(), signal.SIGTERM)
            seen["stop requested"] = loop.requested
            with pytest.raises(Terminated):
                os.kill(os.getpid(), signal.SIGTERM)
        finally:
            loop.close()
        results = []
        thread = threading.Thread(target=lambda: results.extend(forked_child_ends_at_once_by_sigterm()
                                                                for _ in range(3)))
        thread.start()
        thread.join()
        seen["other thread"] = results == [True] * 3
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setitem(cli_module.COMMANDS, "methods", terminated)
    proc = cli("methods")
    assert seen == {"main thread": True, "under the loop": True, "stop requested": True, "other thread": True}
    assert proc.returncode == 128 + signal.SIGTERM and proc.stderr.strip() == "selfsup: terminated", proc
    assert signal.getsignal(signal.SIGTERM) is before  # restored when the command returns


SIGTERM_DURING_A_FORK_IN_TRAINING = """
import os, signal, sys
from selfsup import termination
from selfsup.training.loop import StopSignals

with termination.sigterm_as_interrupt(), termination.stoppable():
    loop = StopSignals(enabled=True)  # training: a pre-emption asks for a checkpoint and a stop
    if sys.argv[1] == "handler-set-aside":  # the negative control: the default action for the fork's length
        termination._fork.saved = ("handler", signal.signal(signal.SIGTERM, signal.SIG_DFL))
    else:
        termination._before_fork()  # os.fork's hooks, the fork itself left out
    os.kill(os.getpid(), signal.SIGTERM)
    termination._after_fork(False)
    print(loop.requested)
    loop.close()
"""


def test_a_sigterm_during_a_fork_in_training_still_asks_for_the_checkpointed_stop():
    """A pre-emption that lands while training forks (data-loader workers) reaches the loop's handler once the fork
    is over: the stop with its checkpoint, not the end of the process; with the handler set aside for the fork (the
    negative control) the process dies of it."""
    kept = subprocess.run([sys.executable, "-c", SIGTERM_DURING_A_FORK_IN_TRAINING, "blocked"], capture_output=True,
                          text=True, timeout=120)
    assert kept.returncode == 0 and kept.stdout.strip() == "True", kept
    lost = subprocess.run([sys.executable, "-c", SIGTERM_DURING_A_FORK_IN_TRAINING, "handler-set-aside"],
                          capture_output=True, text=True, timeout=120)
    assert lost.returncode == -signal.SIGTERM and lost.stdout == "", lost


def test_a_sigterm_before_the_work_starts_stops_it_as_it_starts():
    import threading

    from selfsup.termination import Terminated, sigterm_as_interrupt, stoppable

    assert threading.current_thread() is threading.main_thread()  # else the signal below would end this process
    reached = []
    with sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)  # between the handler's installation and the work: held
        with pytest.raises(Terminated):
            with stoppable():
                reached.append("work")
    assert reached == []


def test_sigterm_reports_only_the_failure_it_interrupted_and_lets_the_report_finish(monkeypatch):
    """A SIGTERM inside an error the command had handled itself is a plain stop (143); one inside a training run's
    stop on an earlier signal reports that stop (its checkpoint line, 130); one while the command reports how it
    ended is ignored (the report and its status, no traceback)."""
    import threading

    from selfsup import cli as cli_module

    assert threading.current_thread() is threading.main_thread()  # else the signals below would end this process

    def recovered(args):
        try:
            raise FileNotFoundError(2, "No such file or directory", "/nonexistent/lock")
        except FileNotFoundError:
            os.kill(os.getpid(), signal.SIGTERM)

    def stopping(args):
        try:
            raise KeyboardInterrupt("interrupted at step 5; resume with: selfsup train --resume run")
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    def broken(args):
        raise RuntimeError("something inside went wrong")

    def line_then_signal(exc):
        os.kill(os.getpid(), signal.SIGTERM)
        return f"selfsup: internal error: {exc}"

    said = {}
    for name, command in (("recovered", recovered), ("stopping", stopping), ("broken", broken)):
        monkeypatch.setitem(cli_module.COMMANDS, "methods", command)
        if name == "broken":
            monkeypatch.setattr(cli_module, "failure_line", line_then_signal)
        try:
            proc = cli("methods")
            said[name] = (proc.returncode, proc.stderr.strip())
        except BaseException as exc:  # noqa: BLE001 -- a Terminated that escaped must fail this test, not end pytest
            said[name] = repr(exc)
    assert said == {"recovered": (143, "selfsup: terminated"),
                    "stopping": (130, "selfsup: interrupted at step 5; resume with: selfsup train --resume run"),
                    "broken": (cli_module.INTERNAL_ERROR, "selfsup: internal error: something inside went wrong")}


def test_resume_accepts_the_staging_folder_and_names_what_changed(tmp_path, monkeypatch):
    from selfsup.training.loop import FAULT_NONFINITE_STEP

    x = save_npy(tmp_path / "x.npy", images(256))
    monkeypatch.setenv(FAULT_NONFINITE_STEP, "3")
    out = tmp_path / "run"
    proc = cli("train", "--data", f"npy:{x}", "--epochs", "2", "--checkpoint-every", "2", "--out", out, *TINY)
    assert proc.returncode == 2 and "last good checkpoint (step 2)" in proc.stderr, proc.stderr
    monkeypatch.delenv(FAULT_NONFINITE_STEP)
    np.save(x, images(256, seed=1))  # same count and shape, other pixels
    assert_error(cli("train", "--resume", tmp_path / "run.partial"), "other content", "checksum")
    np.save(x, images(100))
    assert_error(cli("train", "--resume", out), "256 training samples then, 100 now")
    np.save(x, images(256))
    proc = cli("train", "--resume", tmp_path / "run.partial", "--quiet", "--no-eval", "--json")  # as printed
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"]["resumed_from_step"] == 2 and (out / COMPLETE_MARKER).exists()


def test_multi_crop_views_too_small_for_the_encoder_are_refused_before_training(tmp_path):
    """digits are 8 x 8: local crops of 4 x 4 pixels asked for are too small for ConvNet-4's pooling (by default
    the local crops are raised to the 8 pixels the encoder takes)."""
    out = tmp_path / "run"
    common = ["--epochs", "1", "--encoder-option", "widths=[8,8,8,8]", "--threads", "1", "--no-monitor", "--no-eval",
              "--quiet", "--batch-size", "128", "--method-option", "out_dim=64", "--method-option", "hidden_dim=32"]
    config = tmp_path / "config.yaml"
    config.write_text("data: digits\nmethod: dino\naugmentation:\n  local_size: 4\n")
    proc = cli("train", "--config", config, "--out", out, *common)
    assert_error(proc, "dino", "1x4x4", "convnet4", "local_crops=0")
    assert not out.exists() and not out.with_name("run.partial").exists()
    proc = cli("train", "--data", "digits", "--method", "dino", "--method-option", "local_crops=0", "--out", out,
               *common)
    assert proc.returncode == 0, proc.stderr


def test_video_clips_are_refused_in_one_line_and_other_sizes_resized_only_when_asked(tmp_path):
    """Clips (`npy:` with --modality video): NaN pixels, a rank that is no clip and one frame are named; a trained run
    refuses frames of another size unless --resize, and RGB clips for a grey run."""
    rng = np.random.default_rng(0)
    nan = rng.uniform(0, 1, (8, 4, 8, 8)).astype(np.float32)
    nan[3, 2, 1, 1] = np.nan
    for array, needles in ((nan, ("clip 3 has NaN",)), (np.zeros((8, 8, 8), np.uint8), ("N x T x H x W",)),
                           (np.zeros((8, 1, 8, 8), np.uint8), ("at least 2 frames",))):
        path = save_npy(tmp_path / "bad.npy", array)
        assert_error(cli("train", "--data", f"npy:{path}", "--modality", "video", "--out", tmp_path / "bad",
                         *FAST), path.name, *needles)
    clips = save_npy(tmp_path / "clips.npy", rng.integers(0, 256, (64, 4, 12, 12)).astype(np.uint8))
    run = tmp_path / "run"
    assert cli("train", "--data", f"npy:{clips}", "--modality", "video", "--out", run, "--epochs", "1",
               "--batch-size", "32", "--encoder-option", "widths=[8,8]", "--threads", "1").returncode == 0
    small = save_npy(tmp_path / "small.npy", rng.integers(0, 256, (5, 6, 8, 8)).astype(np.uint8))
    assert_error(cli("embed", run, "--data", f"npy:{small}", "--out", tmp_path / "z.npy"),
                 "8x8", "12x12", "--resize")
    proc = cli("embed", run, "--data", f"npy:{small}", "--out", tmp_path / "z.npy", "--resize")
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "z.npy").shape == (5, 8)
    rgb = save_npy(tmp_path / "rgb.npy", rng.integers(0, 256, (5, 4, 12, 12, 3)).astype(np.uint8))
    assert_error(cli("embed", run, "--data", f"npy:{rgb}", "--out", tmp_path / "z2.npy"), "1-channel frames")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "broken.webm").write_bytes(b"\x1aE\xdf\xa3 not a video")
    assert_error(cli("train", "--data", f"clips:{tmp_path / 'videos'}", "--out", tmp_path / "bad", *FAST),
                 "broken.webm", "cannot decode a video")
    assert_error(cli("train", "--data", f"clips:{tmp_path / 'none'}", "--out", tmp_path / "bad", *FAST),
                 "not a folder")
