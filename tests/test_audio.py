"""The audio modality (issue 20): padding never changes an embedding, views stay inside the clips, the four audio
methods' losses on hand-computable inputs, one-line errors for bad input, and train / embed (per frame) / eval /
report from the CLI and Python."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

sf = pytest.importorskip("soundfile")

import selfsup  # noqa: E402
from selfsup.errors import ConfigError, DataError  # noqa: E402
from selfsup.methods.cola import bilinear_contrastive_loss  # noqa: E402
from selfsup.methods.cpc import future_info_nce  # noqa: E402
from selfsup.methods.hubert_lite import masked_unit_loss, nearest_unit, span_mask  # noqa: E402
from selfsup.modalities import get_modality, new_encoder  # noqa: E402
from selfsup.modalities.audio import audio_clips  # noqa: E402
from selfsup.modalities.audio.frontend import FrontEnd, log_mel, mfcc  # noqa: E402
from selfsup.modalities.audio.modality import mfcc_statistics  # noqa: E402
from selfsup.views import ViewRequest  # noqa: E402
from conftest import run_cli  # noqa: E402

AUDIO = get_modality("audio")
RATE = 16_000


def tone(seconds: float, hz: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * hz * t) + 0.02 * noise).astype(np.float32)


@pytest.fixture(scope="module")
def spec():
    return AUDIO.fit_spec(audio_clips([tone(0.5, 300 + 50 * i, i) for i in range(8)]))


@pytest.mark.parametrize("encoder", AUDIO.encoders.names())
def test_padding_and_what_lies_past_a_clip_never_change_its_embedding(encoder, spec):
    enc_spec = AUDIO.spec_for_encoder(spec, encoder, {})
    torch.manual_seed(0)
    net = new_encoder(AUDIO, encoder, enc_spec).eval()
    clip = tone(0.37, 440)
    stored = [audio_clips([clip], RATE, seconds) for seconds in (0.37, 0.6, 1.1)]
    stored[2][0, 2 + len(clip):] = 5.0  # garbage past the clip's length is masked too
    with torch.no_grad():
        pooled = [net(AUDIO.prepare(x, enc_spec)) for x in stored]
        steps = [net.forward_sequence(AUDIO.prepare(x, enc_spec)) for x in stored]
    frames = -(-len(clip) // 160)  # frames whose centre is a sample of the clip
    for p, s in zip(pooled[1:], steps[1:]):
        torch.testing.assert_close(p, pooled[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(s[:, :frames], steps[0][:, :frames], atol=1e-5, rtol=1e-5)
        assert float(s[:, frames:].abs().sum()) == 0.0  # past the end: zeros


def test_prepared_spectrogram_is_the_normalised_log_mel_with_nan_after_the_end(spec):
    clip = tone(0.3, 500)
    x = audio_clips([clip], RATE, 0.5)
    prepared = AUDIO.prepare(x, spec)[0]
    fe = FrontEnd()
    direct = log_mel(torch.from_numpy(np.concatenate([clip, np.zeros(256, np.float32)]))[None], fe)[0]
    frames = -(-len(clip) // 160)  # frames whose centre is a sample of the clip
    mean, std = torch.tensor(spec["mel_mean"])[:, None], torch.tensor(spec["mel_std"])[:, None]
    torch.testing.assert_close(prepared[:, :frames], ((direct - mean) / std)[:, :frames], atol=1e-4, rtol=1e-4)
    assert bool(torch.isnan(prepared[:, frames:]).all()) and prepared.shape[-1] == 1 + 8000 // 160


def test_mfcc_statistics_are_the_mean_and_std_over_the_clip_frames(spec):
    clip = tone(0.25, 700)
    x = audio_clips([clip], RATE, 0.5)
    frames = -(-len(clip) // 160)  # frames whose centre is a sample of the clip
    c = mfcc(log_mel(torch.from_numpy(np.pad(clip, (0, 4000)))[None], FrontEnd()), 20)[0, :, :frames].double()
    stats = mfcc_statistics(x, spec)[0]
    np.testing.assert_allclose(stats[:20], c.mean(1).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats[20:], c.std(1, unbiased=False).numpy(), rtol=1e-3, atol=1e-3)


def test_waveform_crops_are_windows_of_the_clips_and_mark_their_padding(spec):
    wave_spec = AUDIO.spec_for_encoder(spec, "wave_cnn", {})
    long, short = tone(0.5, 300, 1), tone(0.1, 300, 2)
    x = audio_clips([long, short], RATE, 0.5)
    maker = AUDIO.view_maker(ViewRequest("geometric", global_views=1), wave_spec)
    view = maker(x, torch.Generator().manual_seed(0)).global_views[0][:, 0]
    window = round(0.8 * 8000)
    assert view.shape == (2, window)
    scaled = torch.from_numpy(long) / wave_spec["wave_rms"]
    starts = [s for s in range(len(long) - window + 1) if torch.allclose(scaled[s:s + window], view[0])]
    assert len(starts) == 1  # the long clip's view is one window of it, wholly inside
    torch.testing.assert_close(view[1, :len(short)], torch.from_numpy(short) / wave_spec["wave_rms"])
    assert bool(torch.isnan(view[1, len(short):]).all())  # the short clip is taken whole, padded with NaN


def test_a_clip_shorter_than_one_pooled_frame_keeps_its_own_embedding(spec):
    torch.manual_seed(0)
    net = new_encoder(AUDIO, "spectrogram_cnn", spec).eval()
    clips = audio_clips([tone(0.03, 300), tone(0.03, 2000), tone(0.04, 900)], RATE, 0.5)  # 3-4 frames each
    with torch.no_grad():
        z = net(AUDIO.prepare(clips, spec))
    assert not torch.allclose(z[0], z[1]) and not torch.allclose(z[1], z[2])


def test_instance_views_mix_change_and_mask_but_keep_padding_nan(spec):
    x = audio_clips([tone(0.5, 200 + 100 * i, i) for i in range(6)] + [tone(0.1, 900)], RATE, 0.5)
    request = ViewRequest("instance", global_views=2, local_views=2, clean=True)
    views = AUDIO.view_maker(request, spec)(x, torch.Generator().manual_seed(0))
    again = AUDIO.view_maker(request, spec)(x, torch.Generator().manual_seed(0))
    for v, w in zip(views.crops, again.crops):
        torch.testing.assert_close(v, w, equal_nan=True)  # the loop's generator decides everything
    g0, g1 = views.global_views
    assert g0.shape == g1.shape and views.local_views[0].shape[-1] < g0.shape[-1]
    assert not torch.allclose(torch.nan_to_num(g0), torch.nan_to_num(g1))
    assert bool(torch.isnan(g0[-1]).all(dim=0)[-5:].all())  # the 0.1 s clip: its window's end is padding
    assert bool((~torch.isnan(g0).all(dim=1)).any(dim=1).all())  # every view has observed frames
    assert views.clean.shape == AUDIO.prepare(x, spec).shape


def test_series_views_of_the_spectrogram(spec):
    x = audio_clips([tone(0.4, 300 + 50 * i, i) for i in range(4)], RATE, 0.5)
    views = AUDIO.view_maker(ViewRequest("overlapping_crops", keep=True), spec)(x, torch.Generator().manual_seed(1))
    assert len(views.keep) == 2 and views.overlap.length >= 2
    masked = AUDIO.view_maker(ViewRequest("masked_values", global_views=1, clean=True, corruption_mask=True),
                              spec)(x, torch.Generator().manual_seed(1))
    assert masked.corruption_mask.shape == masked.clean.shape
    wave_spec = AUDIO.spec_for_encoder(spec, "wave_cnn", {})
    with pytest.raises(ConfigError, match="made on spectrograms"):
        AUDIO.view_maker(ViewRequest("overlapping_crops", keep=True), wave_spec)
    with pytest.raises(ConfigError, match="unknown audio augmentation option.*known: crop"):
        AUDIO.view_maker(ViewRequest("instance"), spec, options={"pitch": 2})


# ---- the methods' losses on hand-computable inputs ----

def test_future_info_nce_by_hand():
    # two clips, three steps, one dimension; predictions made at step t for step t + 1
    z = torch.tensor([[[1.0], [2.0], [3.0]], [[-1.0], [0.5], [1.0]]])
    pred = torch.tensor([[[1.0], [0.5], [9.0]], [[2.0], [-1.0], [9.0]]])
    valid = torch.ones(2, 3, dtype=torch.bool)
    # t = 0: clip 0 scores 1*2 (own) vs 1*0.5; clip 1 scores 2*2 vs 2*0.5 (own). t = 1: 0.5*3 (own) vs 0.5*1;
    # clip 1: -1*3 vs -1*1 (own)
    expected = np.mean([-math.log(math.exp(2) / (math.exp(2) + math.exp(0.5))),
                        -math.log(math.exp(1) / (math.exp(4) + math.exp(1))),
                        -math.log(math.exp(1.5) / (math.exp(1.5) + math.exp(0.5))),
                        -math.log(math.exp(-1) / (math.exp(-3) + math.exp(-1)))])
    assert float(future_info_nce(pred, z, valid, 1)) == pytest.approx(expected, rel=1e-6)
    valid[1, 2] = False  # clip 1's last step is padding: its t = 1 prediction leaves the loss, and its z(2) is no
    # candidate for clip 0's t = 1 prediction, which is then alone with its positive (loss 0)
    assert float(future_info_nce(pred, z, valid, 1)) == pytest.approx(np.mean(
        [-math.log(math.exp(2) / (math.exp(2) + math.exp(0.5))), -math.log(math.exp(1) / (math.exp(4) + math.exp(1))),
         0.0]), rel=1e-6)
    assert float(future_info_nce(pred, z, valid, 3)) == 0.0  # nothing three steps ahead of three steps


def test_bilinear_contrastive_loss_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # logits = a W p^T = [[2, 1], [0, 2]]
    expected = 0.5 * (-math.log(math.exp(2) / (math.exp(2) + math.exp(1))) - math.log(math.exp(2) / (1 + math.exp(2))))
    assert float(bilinear_contrastive_loss(a, p, w)) == pytest.approx(expected, rel=1e-6)
    # the same anchors scored against a global batch where they sit at offset 2
    everyone = torch.cat([torch.zeros(2, 2), p])
    assert float(bilinear_contrastive_loss(a, everyone, w, offset=2)) == pytest.approx(
        0.5 * (-math.log(math.exp(2) / (2 + math.exp(2) + math.exp(1))) - math.log(math.exp(2) / (3 + math.exp(2)))),
        rel=1e-6)


def test_cpc_and_cola_losses_of_shards_average_to_the_global_batch_loss():
    torch.manual_seed(0)
    z, pred = torch.randn(6, 5, 4), torch.randn(6, 5, 4)
    valid = torch.ones(6, 5, dtype=torch.bool)
    full = future_info_nce(pred, z, valid, 2)
    parts = [future_info_nce(pred[r * 2:(r + 1) * 2], z[r * 2:(r + 1) * 2], valid[:2], 2, z, 2 * r) for r in range(3)]
    assert float(sum(parts) / 3) == pytest.approx(float(full), abs=1e-6)
    a, p, w = torch.randn(6, 3), torch.randn(6, 3), torch.randn(3, 3)
    full = bilinear_contrastive_loss(a, p, w)
    parts = [bilinear_contrastive_loss(a[r * 2:(r + 1) * 2], p, w, 2 * r) for r in range(3)]
    assert float(sum(parts) / 3) == pytest.approx(float(full), abs=1e-6)


def test_masked_unit_loss_counts_only_masked_steps():
    scores = torch.tensor([[[2.0, 0.0], [0.0, 0.0], [5.0, -5.0]]])
    units = torch.tensor([[0, 1, 1]])
    masked = torch.tensor([[True, True, False]])
    expected = 0.5 * (-math.log(math.exp(2) / (math.exp(2) + 1)) + math.log(2))
    assert float(masked_unit_loss(scores, units, masked)) == pytest.approx(expected, rel=1e-6)


def test_span_masks_and_nearest_units():
    torch.manual_seed(0)
    assert not bool(span_mask(3, 50, 0.0, 10, torch.device("cpu")).any())
    assert bool(span_mask(3, 50, 1.0, 10, torch.device("cpu")).all())
    hidden = span_mask(64, 200, 0.065, 10, torch.device("cpu"))
    assert 0.35 < float(hidden.float().mean()) < 0.65  # about half, as HuBERT's setting
    runs = torch.diff(F.pad(hidden.int(), (1, 1)), dim=1)
    starts, ends = (runs == 1).nonzero(), (runs == -1).nonzero()
    lengths = ends[:, 1] - starts[:, 1]
    inner = ends[:, 1] < 200  # runs cut by the end of the sequence may be shorter
    assert bool((lengths[inner] >= 10).all())
    centroids = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    assert nearest_unit(torch.tensor([[[1.0, 1.0], [9.0, -2.0]]]), centroids).tolist() == [[0, 1]]


def test_hubert_lite_clusters_input_steps_then_its_own_features():
    from selfsup.methods.base import TrainingContext
    from selfsup.methods.hubert_lite import HuBERTLite, steps_of
    from selfsup.storage import TensorStorage
    from selfsup.training.epoch_pass import TrainingSetPass

    x = audio_clips([tone(0.3, 150 * (1 + i % 5), i) for i in range(24)])
    spec = AUDIO.fit_spec(x)
    torch.manual_seed(0)
    method = HuBERTLite(new_encoder(AUDIO, "transformer", spec, depth=1, d_model=32, heads=2, out_dim=16), units=8,
                        proj_dim=8)
    request = method.view_request()
    maker = AUDIO.view_maker(request, spec)
    method.setup(TrainingContext(num_samples=24, batch_size=8, total_steps=12))  # 3 steps an epoch, 4 epochs
    data = [TrainingSetPass(TensorStorage(x), maker, request, 8, 0, e, torch.device("cpu")) for e in range(3)]
    method.eval()
    method.before_epoch(0, data[0])
    assert method.iteration == 1 and bool(method.input_centroids.any()) and not bool(method.feature_centroids.any())
    steps, valid = steps_of(AUDIO.prepare(x, spec))
    units = nearest_unit(steps[valid], method.input_centroids)
    assert len(units.unique()) > 1  # the units are clusters of the input steps (log-mel frames)
    method.before_epoch(1, data[1])
    assert method.iteration == 1
    method.train()
    method.encoder.transformer.layers[0].linear1.weight.data.add_(0.1)  # the encoder moved on during epoch 1
    method.before_epoch(2, data[2])  # half of the 4 epochs: the second iteration starts
    assert method.iteration == 2 and bool(method.feature_centroids.any()) and not method.teacher.training
    for a, b in zip(method.teacher.state_dict().values(), method.encoder.state_dict().values()):
        torch.testing.assert_close(a, b)  # the teacher is the encoder as it was when the iteration started
    loss, logs = method(maker(x[:8], torch.Generator().manual_seed(0)))
    assert torch.isfinite(loss) and 0 < float(logs["hidden_fraction"]) < 1
    assert method.extra_state() == {"iteration": 2}


def test_byol_a_keeps_its_target_decay_constant():
    from selfsup.methods.byol_a import BYOLA

    spec = AUDIO.fit_spec(audio_clips([tone(0.3, 300)] * 4))
    method = BYOLA(new_encoder(AUDIO, "spectrogram_cnn", spec), proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16)
    assert method.target_momentum(0.0) == method.target_momentum(0.9) == 0.99


# ---- bad input ----

def test_bad_audio_input_gets_one_line_errors(tmp_path, spec):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        selfsup.data.sources.get("audio")(selfsup.data.parse_uri(f"audio:{tmp_path / 'empty'}"))
    with pytest.raises(ConfigError, match="unknown option.*known: seconds, sr, test"):
        selfsup.data.sources.get("audio")(selfsup.data.parse_uri(f"audio:{tmp_path}?rate=8000"))
    with pytest.raises(ConfigError, match="sr=500 must be a whole number of Hz, at least 1000"):
        selfsup.data.sources.get("audio")(selfsup.data.parse_uri(f"audio:{tmp_path}?sr=500"))
    with pytest.raises(DataError, match="clip 1 has zero samples"):
        audio_clips([tone(0.1, 300), np.zeros(0, np.float32)])
    bad = tone(0.1, 300)
    bad[5] = np.nan
    with pytest.raises(DataError, match="clip 0 has samples that are not finite"):
        audio_clips([bad])
    with pytest.raises(DataError, match="clip 0 is not a 1-D numeric waveform"):
        audio_clips([np.zeros((2, 100), np.float32)])
    mixed = torch.cat([audio_clips([tone(0.1, 300)], 16000, 0.2), audio_clips([tone(0.1, 300)], 8000, 0.4)[:, :3202]])
    with pytest.raises(DataError, match="2 different sample rates"):
        AUDIO.fit_spec(mixed)
    with pytest.raises(DataError, match="clips at 8000 Hz, but the run was trained at 16000 Hz"):
        AUDIO.conform(audio_clips([tone(0.1, 300)], 8000), spec, "input")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "broken.wav").write_text("not audio")
    with pytest.raises(DataError, match="broken.wav: not a readable audio file"):
        selfsup.data.sources.get("audio")(selfsup.data.parse_uri(f"audio:{tmp_path / 'x'}"))


def test_a_bad_audio_source_leaves_no_run_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "run"
    r = run_cli("train", "--data", f"audio:{tmp_path / 'empty'}", "--method", "cola", "--epochs", "1", "--out", out,
                show_warnings=True)
    assert r.returncode != 0 and "no audio files" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "run.partial").exists()


# ---- end to end ----

@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("sounds")
    rng = np.random.default_rng(0)
    for label, hz in (("low", 220), ("high", 1200)):
        (root / label).mkdir()
        for i in range(12):
            wave = tone(rng.uniform(0.2, 0.45), hz * rng.uniform(0.9, 1.1), i)
            if i == 0:  # one stereo file at another rate: downmixed and resampled
                sf.write(str(root / label / f"{i}.flac"), np.stack([wave, wave], 1)[::2], 8000)
            else:
                sf.write(str(root / label / f"{i}.wav"), wave, RATE)
    return root


def test_audio_trains_embeds_per_frame_evaluates_and_reports_from_the_cli(folder, tmp_path):
    out = tmp_path / "run"
    data = f"audio:{folder}?seconds=0.5"
    r = run_cli("train", "--data", data, "--method", "cola", "--epochs", "2", "--batch-size", "8", "--threads", "1",
                "--out", out, show_warnings=True)
    assert r.returncode == 0, r.stderr
    assert "2 file(s) with 2 channels mixed down to mono" in r.stderr and "2 file(s) resampled to 16000 Hz" in r.stderr
    # one line each, no source file or line of the code that warned
    assert any(line.startswith("selfsup: warning: audio:") for line in r.stderr.splitlines()), r.stderr
    assert "UserWarning" not in r.stderr and ".py:" not in r.stderr, r.stderr
    ev = json.loads((out / "eval.json").read_text())
    assert set(ev["baselines"]) == {"raw", "random_encoder"}  # raw = MFCC statistics for audio
    report = (out / "report.html").read_text()
    assert "<audio controls" in report and "Listen" in report
    steps = tmp_path / "steps.npy"
    r = run_cli("embed", out, "--data", data, "--per-timestep", "--out", steps, show_warnings=True)
    assert r.returncode == 0, r.stderr
    assert np.load(steps).shape == (24, 1 + 8000 // 160, 512)


def test_audio_from_python_arrays_of_any_length(tmp_path):
    clips = [tone(0.1 + 0.02 * i, 200 + 40 * i, i) for i in range(16)]
    run = selfsup.train(selfsup.api.dataset_from_array(clips, modality="audio"), method="cpc", epochs=1,
                        batch_size=8, monitor=False, threads=1, out=tmp_path / "cpc", overwrite=True)
    assert run.resolved.encoder == "wave_cnn"  # CPC needs a per-frame encoder: the waveform CNN
    z = run.embed([tone(0.2, 300), tone(0.05, 500)])
    assert z.shape == (2, 256) and np.isfinite(z).all()
    steps = run.embed([tone(0.2, 300)], per_timestep=True)
    assert steps.shape[:2] == (1, 1 + 3200 // 160)


def test_npy_waveforms_with_their_rate(tmp_path):
    waves = np.stack([tone(0.2, 300 + 20 * i, i) for i in range(6)])[:, ::2]  # 8 kHz
    np.save(tmp_path / "w.npy", waves)
    from selfsup.loading import load_dataset

    ds = load_dataset(f"npy:{tmp_path / 'w.npy'}?sr=8000", modality="audio")
    spec = AUDIO.fit_spec(ds.train.x)
    assert spec["sample_rate"] == 8000 and spec["frontend"]["hop_length"] == 80 and spec["samples"] == 1600
