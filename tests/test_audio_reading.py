"""Reading recordings (issue 20, in progress): downmixing, resampling, cutting and padding with lengths, sub-folder
labels, and one-line errors for files that cannot be used."""
import numpy as np
import pytest
import torch

from selfsup.errors import DataError
from selfsup.modalities.audio.reading import ReadPolicy, clip_lengths, folder_files, read_clip, read_folder

sf = pytest.importorskip("soundfile")


def tone(seconds, rate, hz=440.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * hz * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def test_a_folder_reads_as_lengths_and_padded_mono_clips_at_one_rate_with_subfolder_labels(tmp_path):
    (tmp_path / "dog").mkdir()
    (tmp_path / "cat").mkdir()
    sf.write(str(tmp_path / "dog" / "a.wav"), tone(0.5, 16000), 16000)
    sf.write(str(tmp_path / "dog" / "b.flac"), tone(3.0, 16000, channels=2), 16000)  # stereo, longer than 2 s
    sf.write(str(tmp_path / "cat" / "c.wav"), tone(1.0, 44100), 44100)  # another rate
    x, labels, policy = read_folder(str(tmp_path), rate=16000, seconds=2.0)
    assert x.shape == (3, 2 + 32000) and labels == ["cat", "dog", "dog"]  # sorted paths: cat/c, dog/a, dog/b
    assert clip_lengths(x).tolist() == [16000, 8000, 32000]
    assert torch.all(x[1, 2 + 8000:] == 0) and float(x[1, 2:8002].abs().max()) > 0.4  # padded with zeros after
    assert policy.to_dict() == {"rate": 16000, "samples": 32000, "downmixed": 1, "resampled": 1, "cut": 1,
                                "channels": {"1": 2, "2": 1}}
    np.testing.assert_allclose(x[2, 2:1002].numpy(), tone(0.5, 16000)[:1000], atol=1e-4)  # stereo mean = the tone


def test_unusable_files_are_refused_in_one_line(tmp_path):
    policy = ReadPolicy(16000, 16000)
    (tmp_path / "text.wav").write_text("not audio at all")
    with pytest.raises(DataError, match=r"text\.wav: not a readable audio file") as err:
        read_clip(tmp_path / "text.wav", policy)
    assert "\n" not in str(err.value)
    sf.write(str(tmp_path / "silent.wav"), np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(DataError, match="(zero samples|empty file)"):
        read_clip(tmp_path / "silent.wav", policy)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        read_clip(tmp_path / "empty.wav", policy)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        folder_files(str(tmp_path / "nothing"))
    with pytest.raises(DataError, match="not a folder"):
        folder_files(str(tmp_path / "missing"))
