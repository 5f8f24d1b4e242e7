"""The audio front end (issue 20, in progress): log-mel spectrogram against a direct numpy computation, MFCC against
scipy's DCT, the frame mask of padded clips, and resampling of a pure tone."""
import math

import numpy as np
import pytest
import torch

from selfsup.modalities.audio.frontend import (FrontEnd, frame_mask, hz_to_mel, log_mel, mel_filterbank, mel_to_hz,
                                               mfcc, resample)


def numpy_log_mel(wave: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """The same spectrogram written out frame by frame: reflect-padded by n_fft/2, a periodic Hann window of
    win_length centred in n_fft, rfft, power, triangles on the HTK mel scale built one filter at a time, log."""
    padded = np.pad(wave, fe.n_fft // 2, mode="reflect")
    window = np.zeros(fe.n_fft)
    start = (fe.n_fft - fe.win_length) // 2
    window[start:start + fe.win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(fe.win_length) / fe.win_length)
    frames = [padded[i * fe.hop_length:i * fe.hop_length + fe.n_fft] * window for i in range(fe.frames(len(wave)))]
    power = np.abs(np.fft.rfft(np.array(frames), axis=1)) ** 2  # [frames, bins]
    freqs = np.arange(fe.n_fft // 2 + 1) * fe.sample_rate / fe.n_fft
    mel_edges = np.linspace(2595 * np.log10(1 + fe.f_min / 700), 2595 * np.log10(1 + fe.sample_rate / 2 / 700),
                            fe.n_mels + 2)
    hz = 700 * (10 ** (mel_edges / 2595) - 1)
    bank = np.zeros((fe.n_mels, len(freqs)))
    for m in range(fe.n_mels):
        lo, mid, hi = hz[m], hz[m + 1], hz[m + 2]
        for b, f in enumerate(freqs):
            if lo < f <= mid:
                bank[m, b] = (f - lo) / (mid - lo)
            elif mid < f < hi:
                bank[m, b] = (hi - f) / (hi - mid)
    return np.log(power @ bank.T + fe.floor).T  # [mels, frames]


def test_log_mel_matches_a_direct_numpy_computation():
    fe = FrontEnd()
    rng = np.random.default_rng(0)
    t = np.arange(8000) / fe.sample_rate
    wave = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(len(t))).astype(np.float32)
    ours = log_mel(torch.from_numpy(wave)[None], fe)[0].numpy()
    reference = numpy_log_mel(wave.astype(np.float64), fe)
    assert ours.shape == reference.shape == (64, fe.frames(8000))
    np.testing.assert_allclose(ours, reference, atol=2e-3, rtol=1e-4)


def test_a_pure_tone_lights_the_mel_channel_whose_centre_is_nearest():
    fe = FrontEnd()
    centres = mel_to_hz(np.linspace(hz_to_mel(fe.f_min), hz_to_mel(fe.sample_rate / 2), fe.n_mels + 2))[1:-1]
    for hz in (300.0, 1000.0, 3000.0):
        wave = torch.sin(2 * math.pi * hz * torch.arange(16000) / fe.sample_rate)[None]
        loudest = int(log_mel(wave, fe)[0, :, 10:-10].mean(dim=1).argmax())
        assert abs(loudest - int(np.abs(centres - hz).argmin())) <= 1
    bank = mel_filterbank(fe)
    assert bank.shape == (64, 257) and float(bank.max()) <= 1.0 and bool((bank.sum(dim=1) > 0).all())


def test_mfcc_is_the_orthonormal_dct_of_the_log_mels():
    scipy_fft = pytest.importorskip("scipy.fft")
    x = torch.randn(2, 64, 7)
    ours = mfcc(x, count=20)
    reference = scipy_fft.dct(x.numpy(), type=2, norm="ortho", axis=1)[:, :20]
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-4)
    full = mfcc(x, count=64)
    np.testing.assert_allclose(full.square().sum(1).numpy(), x.square().sum(1).numpy(), rtol=1e-4)  # energy kept


def test_frame_mask_keeps_the_frames_centred_on_real_samples():
    fe = FrontEnd()
    lengths = torch.tensor([16000, 8000, 161, 1])
    mask = frame_mask(lengths, fe, fe.frames(16000))
    assert mask.sum(dim=1).tolist() == [100, 50, 2, 1]  # centres 0, 160, ... below each length (of 101 frames)
    assert mask[1, :50].all() and not mask[1, 50:].any()


@pytest.mark.parametrize("rate", [44100, 22050, 8000])
def test_resampling_a_pure_tone_keeps_its_frequency_and_amplitude(rate):
    pytest.importorskip("scipy.signal")
    hz, seconds, target = 1000.0, 2.0, 16000
    wave = (0.8 * np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate)).astype(np.float32)
    out = resample(wave, rate, target)
    assert len(out) == int(target * seconds)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    assert abs(np.argmax(spectrum) * target / len(out) - hz) <= target / len(out)
    middle = out[len(out) // 4:-len(out) // 4]
    assert abs(np.sqrt(np.mean(middle ** 2)) - 0.8 / np.sqrt(2)) < 0.01
