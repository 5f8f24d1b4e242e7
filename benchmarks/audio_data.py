#!/usr/bin/env python
"""Spoken digits synthesised offline with Debian's espeak-ng (the audio benchmark's data; protocol "Audio,
speaker-independent spoken digits").

A speaker is an English accent of espeak-ng (8 of them) with one of its voice variants (14 drawn per accent, seeded)
and its own speaking rate (120-210 words a minute) and pitch (25-75): 112 speakers. Each says each digit ("zero" ..
"nine") `repeats` times, every repeat at a rate and pitch jittered by up to 10%, and each clip gets white noise at a
signal-to-noise ratio drawn from (clean, 30, 20, 10 dB). Clips are resampled to 16 kHz (polyphase) and written as
16-bit WAV files in `OUT/<digit>/<speaker>_<repeat>.wav`, with `OUT/clips.csv` (path, digit, speaker, accent, variant,
rate, pitch, snr_db, split). The split is by speaker: a quarter of the speakers (seeded) are `test` and never appear
in `train`, so a probe is speaker-independent; speaker identity is the second task. Deterministic for a seed (the
same espeak-ng version).

    python benchmarks/audio_data.py --out ~/.cache/selfsup/spoken-digits
"""
from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "croak", "klatt", "klatt2",
            "klatt3", "klatt4", "grandpa", "grandma", "whisper", "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie",
            "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "john", "linda", "max",
            "michel", "paul", "quincy", "rob", "robert", "steph", "travis", "victor", "zac", "shelby", "norbert")
SNRS = (None, 30.0, 20.0, 10.0)
RATE = 16_000
#: where the benchmarks look for the clips (and generate them when missing)
DEFAULT_OUT = Path.home() / ".cache" / "selfsup" / "spoken-digits"


def speak(text: str, voice: str, rate: int, pitch: int, path: Path) -> tuple[np.ndarray, int]:
    """espeak-ng's waveform (float32, its own rate) of `text`, through the scratch file `path`."""
    import soundfile as sf

    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(path), text], check=True,
                   capture_output=True)
    wave, sr = sf.read(str(path), dtype="float32")
    path.unlink()
    return wave, int(sr)


def with_noise(wave: np.ndarray, snr_db: float | None, rng: np.random.Generator) -> np.ndarray:
    if snr_db is None:
        return wave
    power = float(np.mean(wave ** 2)) or 1e-12
    noise = rng.standard_normal(len(wave)) * np.sqrt(power / 10 ** (snr_db / 10))
    return (wave + noise).astype(np.float32)


def generate(out: Path, repeats: int = 2, seed: int = 0, workers: int = 2, per_accent: int = 14) -> Path:
    import soundfile as sf

    from selfsup.modalities.audio.frontend import resample

    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng not found: apt-get install espeak-ng")
    rng = np.random.default_rng(seed)
    speakers = []
    for accent in ACCENTS:
        for variant in rng.choice(VARIANTS, size=per_accent, replace=False):
            speakers.append({"accent": accent, "variant": str(variant), "rate": int(rng.integers(120, 211)),
                             "pitch": int(rng.integers(25, 76))})
    order = rng.permutation(len(speakers))
    test = set(order[:len(speakers) // 4].tolist())
    jobs = []
    for s, spk in enumerate(speakers):
        for d, word in enumerate(DIGITS):
            for r in range(repeats):
                jitter = rng.uniform(0.9, 1.1, size=2)
                jobs.append({"speaker": f"s{s:03d}", "digit": d, "word": word, "repeat": r, **spk,
                             "clip_rate": int(spk["rate"] * jitter[0]), "clip_pitch": int(spk["pitch"] * jitter[1]),
                             "snr_db": SNRS[int(rng.integers(len(SNRS)))], "noise_seed": int(rng.integers(2 ** 31)),
                             "split": "test" if s in test else "train"})
    tmp = Path(tempfile.mkdtemp(prefix="digits-"))
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)

    def make(job: dict) -> dict:
        wave, sr = speak(job["word"], f"{job['accent']}+{job['variant']}", job["clip_rate"], job["clip_pitch"],
                         tmp / f"{job['speaker']}_{job['digit']}_{job['repeat']}.wav")  # one scratch file a job
        wave = with_noise(resample(wave, sr, RATE), job["snr_db"], np.random.default_rng(job["noise_seed"]))
        path = Path(str(job["digit"])) / f"{job['speaker']}_{job['repeat']}.wav"
        (partial / path.parent).mkdir(parents=True, exist_ok=True)
        sf.write(str(partial / path), np.clip(wave, -1, 1), RATE, subtype="PCM_16")
        return {"path": str(path), "digit": job["digit"], "speaker": job["speaker"], "accent": job["accent"],
                "variant": job["variant"], "rate": job["clip_rate"], "pitch": job["clip_pitch"],
                "snr_db": "" if job["snr_db"] is None else job["snr_db"], "split": job["split"]}

    with ThreadPoolExecutor(workers) as pool:  # espeak-ng runs as a subprocess: threads suffice
        rows = list(pool.map(make, jobs))
    with open(partial / "clips.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)  # complete or absent: never a half-written folder under the final name
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = generate(args.out.expanduser(), args.repeats, args.seed)
    print(f"{sum(1 for _ in out.rglob('*.wav'))} clips -> {out}")


if __name__ == "__main__":
    main()
