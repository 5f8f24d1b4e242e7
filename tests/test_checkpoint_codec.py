"""The checkpoint file format: a checksum over the state document and every tensor, verified on every decode."""
import json

import pytest
import safetensors.torch
import torch

from selfsup.errors import DataError
from selfsup.training import checkpoint_codec as codec

STATE = {"format": codec.FORMAT, "version": codec.VERSION, "position": {"steps": 3}}
TENSORS = {"model/w": torch.arange(12, dtype=torch.float32).reshape(3, 4),
           "model/b": torch.ones(2, dtype=torch.bfloat16), "loop/perm": torch.arange(5), "empty": torch.zeros(0)}


def test_round_trip_and_every_flipped_byte_of_the_tensors_is_caught():
    data = codec.encode(STATE, TENSORS)
    ck = codec.decode(data, "ck")
    assert ck.state == STATE and all(torch.equal(ck.tensors[k], v) for k, v in TENSORS.items())
    start = 8 + int.from_bytes(data[:8], "little")  # the tensors' bytes follow the header
    for i in range(start, len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises(DataError, match="checksum"):
            codec.decode(bytes(bad), "ck")


def test_a_changed_state_document_is_caught_and_a_file_without_checksum_still_reads():
    meta = codec.safetensors_metadata(codec.encode(STATE, TENSORS), "ck")
    moved = json.dumps({**STATE, "position": {"steps": 4}})
    forged = safetensors.torch.save(TENSORS, metadata={**meta, "state": moved})
    with pytest.raises(DataError, match="checksum"):
        codec.decode(forged, "ck")
    old = safetensors.torch.save(TENSORS, metadata={"format": codec.FORMAT, "state": json.dumps(STATE)})
    assert codec.decode(old, "ck").step == 3  # written before checksums: read as it is


def test_the_checksum_depends_on_names_dtypes_and_shapes():
    base = codec.checksum("{}", {"a": torch.zeros(4)})
    assert base != codec.checksum("{}", {"b": torch.zeros(4)})
    assert base != codec.checksum("{}", {"a": torch.zeros(2, 2)})
    assert base != codec.checksum("{}", {"a": torch.zeros(4, dtype=torch.int32)})
    assert base == codec.checksum("{}", {"a": torch.zeros(4)})


def test_writing_keeps_the_previous_checkpoint_and_reading_falls_back_to_it(tmp_path):
    latest, previous = codec.checkpoint_files(tmp_path)
    latest.parent.mkdir()
    for step in (1, 2, 3):
        codec.write_keeping_previous(latest, codec.encode({**STATE, "position": {"steps": step}}, TENSORS))
    assert codec.load(latest).step == 3 and codec.load(previous).step == 2
    assert sorted(p.name for p in latest.parent.iterdir()) == sorted([codec.CHECKPOINT_FILE, codec.PREVIOUS_FILE])
    assert codec.read_latest(tmp_path)[1] == latest
    latest.write_bytes(latest.read_bytes()[:-10])  # torn
    with pytest.warns(UserWarning, match="resuming from the checkpoint before it.*step 2"):
        data, path = codec.read_latest(tmp_path)
    assert path == previous and codec.decode(data, "p").step == 2
    # the damaged latest is set aside: the next save must not keep it as the checkpoint before the latest
    assert not latest.exists() and latest.with_name(codec.CHECKPOINT_FILE + ".damaged").exists()
    codec.write_keeping_previous(latest, codec.encode({**STATE, "position": {"steps": 4}}, TENSORS))
    assert codec.load(previous).step == 2 and codec.load(latest).step == 4
    latest.write_bytes(b"torn")
    previous.unlink()
    with pytest.raises(DataError, match="not a selfsup checkpoint"):  # nothing sound left: the error names it
        codec.read_latest(tmp_path)
