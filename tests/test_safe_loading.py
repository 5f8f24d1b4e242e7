"""Loading checkpoints and runs never executes code: a file crafted to run code when unpickled is refused with a
one-line error and its payload never runs (it does run under an unsafe torch.load, which proves it is live)."""
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import selfsup
from selfsup.training import checkpoint as ckpt_io
from conftest import run_cli


class Payload:
    """Unpickling this calls exec(...), which writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def craft(path: Path, marker: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "torch":  # what torch.save writes: a zip holding a pickle
        torch.save({"model": {"w": torch.zeros(2)}, "optimizer": Payload(marker)}, path.with_suffix(".pt"))
        path.with_suffix(".pt").rename(path)
    else:
        path.write_bytes(pickle.dumps({"state": Payload(marker)}))


@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_crafted_checkpoint_does_not_execute_on_resume(tmp_path, kind):
    marker = tmp_path / "marker.txt"
    run = tmp_path / "run"
    ckpt = ckpt_io.checkpoint_file(tmp_path / "run.partial")
    craft(ckpt, marker, kind)
    # the payload is live: an unsafe load runs it
    copy = tmp_path / "copy.pt"
    copy.write_bytes(ckpt.read_bytes())
    live = subprocess.run([sys.executable, "-c", "import sys, torch, pickle; p = sys.argv[1]; "
                           "torch.load(p, weights_only=False) if sys.argv[2] == 'torch' else pickle.load(open(p, 'rb'))",
                           str(copy), kind], capture_output=True, text=True)
    assert live.returncode == 0, live.stderr
    assert marker.exists()
    marker.unlink()
    # selfsup refuses it without running it
    proc = run_cli("train", "--resume", run, "--no-eval")
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1, err
    assert "not a selfsup checkpoint" in err and "checkpoint.safetensors" in err, err
    assert not marker.exists()
    with pytest.raises(selfsup.SelfSupError, match="not a selfsup checkpoint"):
        ckpt_io.load(ckpt)
    assert not marker.exists()
    assert ckpt.exists()  # a refused checkpoint is left for the user to inspect


def test_crafted_weights_in_a_run_directory_do_not_execute(tmp_path):
    run = tmp_path / "run"
    selfsup.train("digits", epochs=1, batch_size=256, encoder_options={"widths": [8, 8, 8, 8]}, monitor=False,
                  method_options={"proj_hidden_dim": 32}, out=run, threads=1)
    marker = tmp_path / "marker.txt"
    craft(run / "encoder.safetensors", marker, "torch")
    with pytest.raises(selfsup.SelfSupError, match="encoder.safetensors"):
        selfsup.load(run)
    assert not marker.exists()


def test_nothing_in_the_package_unpickles():
    """Guard: no torch.load, pickle.load(s) or allow_pickle=True anywhere in the package source."""
    src = Path(selfsup.__file__).parent
    pattern = re.compile(r"(?<!safetensors\.)torch\.load\(|pickle\.loads?\(|allow_pickle\s*=\s*True|joblib\.load\(")
    offenders = [f"{p.relative_to(src)}:{i}" for p in src.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if pattern.search(line) and not line.lstrip().startswith("#")]
    assert not offenders, offenders
