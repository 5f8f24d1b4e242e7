"""The spoken-digit generator of the audio benchmark (benchmarks/audio_data.py, issue 20): espeak-ng clips at 16 kHz,
a speaker-independent split, a complete folder or none."""
import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def test_generated_digits_are_16_khz_clips_split_by_speaker(tmp_path):
    sf = pytest.importorskip("soundfile")
    from audio_data import ACCENTS, DIGITS, RATE, generate

    out = generate(tmp_path / "digits", repeats=1, seed=0, per_accent=1)
    assert not (tmp_path / "digits.partial").exists()
    rows = list(csv.DictReader(open(out / "clips.csv")))
    assert len(rows) == len(ACCENTS) * len(DIGITS)
    train = {r["speaker"] for r in rows if r["split"] == "train"}
    test = {r["speaker"] for r in rows if r["split"] == "test"}
    assert len(test) == len(ACCENTS) // 4 and not train & test  # test voices never appear in training
    assert {int(r["digit"]) for r in rows} == set(range(10))
    for r in rows[:5]:
        wave, rate = sf.read(str(out / r["path"]), dtype="float32")
        assert rate == RATE and 0.2 * RATE < len(wave) < 3 * RATE and np.abs(wave).max() > 0.05
        assert Path(r["path"]).parts[0] == r["digit"]
    again = list(csv.DictReader(open(generate(tmp_path / "again", repeats=1, seed=0, per_accent=1) / "clips.csv")))
    assert again == rows  # deterministic for a seed
