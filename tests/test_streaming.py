"""Encoded image sources (tar shards, Parquet, Hugging Face save_to_disk folders, folders): the same pixels decoded in
memory, streamed or prepared; shards dealt disjointly to torchrun processes; a streamed run resumed inside an epoch
continues at the same sample; worker processes decode the same batches as the loop would in place."""
import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch

import selfsup
from selfsup.items import ItemStorage
from selfsup.loading import load_dataset
from selfsup.modalities.image.encoded import IMAGE_KINDS, image_decoder
from selfsup.shard_readers import index_tar_shards
from selfsup.training.distributed import World, shard
from selfsup.training.feeder import epoch_batches
from selfsup.training.loop import FAULT_NONFINITE_STEP
from selfsup.training.session import resume
from test_resume import SMALL, assert_same_weights

SHARD_SIZES = (40, 55, 30, 45, 50, 36)  # unequal, as real shards are


def encoded(i: int, fmt: str = "JPEG", side: int = 20) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(i)
    a = np.zeros((side, side + i % 5, 3), np.uint8)
    a[..., i % 3] = 40 + 60 * (i % 3)  # three classes of colour, with noise
    a = np.clip(a + rng.integers(0, 60, a.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt)
    return buf.getvalue()


def write_shards(folder, sizes=SHARD_SIZES, corrupt: int | None = None) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    n, paths = 0, []
    for s, size in enumerate(sizes):
        path = folder / f"shard-{s:03d}.tar"
        with tarfile.open(path, "w") as tar:
            for _ in range(size):
                image = b"not an image" if n == corrupt else encoded(n, "PNG" if n % 4 == 0 else "JPEG")
                for ext, data in (("jpg" if n % 4 else "png", image), ("cls", str(n % 3).encode())):
                    info = tarfile.TarInfo(f"part{s}/sample{n:05d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                n += 1
        paths.append(path)
    return paths


def write_parquet(path, n=90, row_group=25):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": i, "image": {"bytes": encoded(i), "path": None}, "label": ["a", "b", "c"][i % 3]} for i in range(n)]
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group)


def write_saved_dataset(root, splits={"train": 48, "test": 15}):
    """The layout `datasets.DatasetDict.save_to_disk` writes: Arrow IPC stream files, state.json, dataset_info.json."""
    import pyarrow as pa

    for name, n in splits.items():
        folder = root / name
        folder.mkdir(parents=True)
        table = pa.Table.from_pylist([{"image": {"bytes": encoded(i, "PNG"), "path": None}, "label": i % 3}
                                      for i in range(n)])
        files = []
        for f, part in enumerate((table.slice(0, n // 2), table.slice(n // 2))):
            files.append({"filename": f"data-{f:05d}-of-00002.arrow"})
            with pa.OSFile(str(folder / files[-1]["filename"]), "wb") as sink, \
                    pa.ipc.new_stream(sink, table.schema) as writer:
                for batch in part.to_batches(max_chunksize=10):
                    writer.write_batch(batch)
        (folder / "state.json").write_text(json.dumps({"_data_files": files, "_fingerprint": "0", "_split": name}))
        (folder / "dataset_info.json").write_text(json.dumps({"features": {
            "image": {"_type": "Image"}, "label": {"names": ["red", "green", "blue"], "_type": "ClassLabel"}}}))
    (root / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))


def stream_of(ds):
    assert ds.train.stream is not None and ds.info["data_path"].startswith("workers:")
    return ds.train.stream


def test_tar_shards_give_the_same_pixels_in_memory_streamed_and_prepared(tmp_path):
    write_shards(tmp_path / "shards")
    uri = f"tar:{tmp_path / 'shards'}/shard-{{000..005}}.tar?size=16"
    memory = load_dataset(uri)
    assert memory.train.stream is None and memory.info["data_path"].startswith("memory:")
    assert memory.train.x.shape == (sum(SHARD_SIZES), 3, 16, 16)
    assert memory.info["classes"] == ["0", "1", "2"] and list(memory.train.y[:4]) == [0, 1, 2, 0]
    streamed = stream_of(load_dataset(uri, memory_budget=0))
    every = torch.arange(len(streamed))
    assert torch.equal(streamed.take(every), memory.train.x)
    selfsup.prepare(uri, tmp_path / "cache", progress=False)
    assert torch.equal(load_dataset(f"prepared:{tmp_path / 'cache'}").train.x, memory.train.x)
    # the folder form, a glob and a single shard name the same samples
    assert torch.equal(load_dataset(f"tar:{tmp_path / 'shards'}?size=16").train.x, memory.train.x)
    assert torch.equal(load_dataset(f"tar:{tmp_path / 'shards'}/*.tar?size=16").train.x, memory.train.x)
    assert len(load_dataset(f"tar:{tmp_path / 'shards' / 'shard-002.tar'}?size=16").train) == SHARD_SIZES[2]


def test_parquet_and_saved_datasets_read_their_image_columns(tmp_path):
    write_parquet(tmp_path / "images.parquet")
    ds = load_dataset(f"parquet:{tmp_path / 'images.parquet'}?size=16")
    assert ds.modality == "image" and ds.train.x.shape == (90, 3, 16, 16) and ds.info["classes"] == ["a", "b", "c"]
    streamed = stream_of(load_dataset(f"parquet:{tmp_path / 'images.parquet'}?size=16", memory_budget=0))
    assert streamed.describe()["shards"] == 4  # row groups of 25
    assert torch.equal(streamed.take(torch.tensor([89, 0, 50, 26])), ds.train.x[[89, 0, 50, 26]])
    write_saved_dataset(tmp_path / "hf")
    ds = load_dataset(f"hf:{tmp_path / 'hf'}?size=12")
    assert ds.train.x.shape == (48, 3, 12, 12) and ds.test.x.shape == (15, 3, 12, 12)
    assert ds.info["classes"] == ["blue", "green", "red"]  # ClassLabel names, sorted
    streamed = stream_of(load_dataset(f"hf:{tmp_path / 'hf'}?size=12", memory_budget=0))
    assert streamed.describe()["shards"] == 6  # record batches of 10 in two files of 24
    assert torch.equal(streamed.take(torch.arange(48)), ds.train.x)
    selfsup.prepare(f"hf:{tmp_path / 'hf'}?size=12", tmp_path / "cache", progress=False)
    prepared = load_dataset(f"prepared:{tmp_path / 'cache'}")
    assert torch.equal(prepared.train.x, ds.train.x) and torch.equal(prepared.test.x, ds.test.x)


def test_a_saved_dataset_without_images_is_a_table(tmp_path):
    import pyarrow as pa

    folder = tmp_path / "table"
    folder.mkdir()
    table = pa.table({"a": np.arange(30.0), "b": np.arange(30.0) ** 2, "label": np.arange(30) % 2})
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    ds = load_dataset(f"hf:{folder}")
    assert ds.modality == "tabular" and ds.info["columns"] == ["a", "b"] and list(ds.train.y[:3]) == [0, 1, 0]


def test_shards_are_dealt_disjointly_to_processes_with_equal_steps(tmp_path):
    write_shards(tmp_path / "shards")
    storage = stream_of(load_dataset(f"tar:{tmp_path / 'shards'}?size=8", memory_budget=0))
    shard_of = np.repeat(np.arange(len(SHARD_SIZES)), SHARD_SIZES)
    batch = 8
    for epoch in range(2):
        order = storage.epoch_order(torch.Generator().manual_seed(epoch), 2, batch)
        steps = storage.epoch_samples(2, batch) // (2 * batch)
        assert len(order) == steps * 2 * batch
        # process 0 owns shards 0, 2, 4 (120 samples), process 1 shards 1, 3, 5 (136): 120 // 8 = 15 steps each
        assert steps == 15
        seen = [torch.cat([shard(order, i, batch, World(r, 2)) for i in range(steps)]) for r in range(2)]
        owned = [set(shard_of[s.numpy()]) for s in seen]
        assert owned[0] <= {0, 2, 4} and owned[1] <= {1, 3, 5} and not owned[0] & owned[1]
        for s in seen:
            assert len(set(s.tolist())) == len(s)  # no sample twice in an epoch
    one = storage.epoch_order(torch.Generator().manual_seed(0), 1, batch)
    assert set(shard_of[one.numpy()]) == set(range(6))  # one process reads every shard
    # a window of the buffer holds consecutive samples of the visited shards, shuffled
    small = stream_of(load_dataset(f"tar:{tmp_path / 'shards'}?size=8&buffer=10", memory_budget=0))
    order = small.epoch_order(torch.Generator().manual_seed(3), 1, batch)
    for window in order[:len(order) // 10 * 10].view(-1, 10):  # at most two runs of consecutive samples
        assert (window.sort().values.diff() != 1).sum() <= 1
    assert not torch.equal(order[:10], order[:10].sort().values)  # shuffled within the window
    # fewer shards than processes: equal contiguous parts of the items stand for shards
    single = stream_of(load_dataset(f"tar:{tmp_path / 'shards' / 'shard-001.tar'}?size=8", memory_budget=0))
    order = single.epoch_order(torch.Generator().manual_seed(0), 2, 4)
    parts = [torch.cat([shard(order, i, 4, World(r, 2)) for i in range(len(order) // 8)]) for r in range(2)]
    assert parts[0].max() < 27 <= parts[1].min()


def test_worker_processes_decode_the_same_batches_as_the_loop_in_place(tmp_path):
    write_shards(tmp_path / "shards", sizes=(30, 30))
    storage = stream_of(load_dataset(f"tar:{tmp_path / 'shards'}?size=8", memory_budget=0))
    assert storage.workers >= 1
    order = storage.epoch_order(torch.Generator().manual_seed(1), 1, 8)
    cpu = torch.device("cpu")
    with_workers = list(epoch_batches(storage, order, 2, 7, 8, World(), cpu))
    storage.workers = 0
    in_place = list(epoch_batches(storage, order, 2, 7, 8, World(), cpu))
    assert len(with_workers) == len(in_place) == 5
    assert all(torch.equal(a, b) for a, b in zip(with_workers, in_place))


def test_a_corrupt_member_is_named_and_skipped_or_stops(tmp_path):
    write_shards(tmp_path / "shards", sizes=(20, 20), corrupt=23)
    uri = f"tar:{tmp_path / 'shards'}?size=8"
    for budget in (None, 0):  # decoding in memory, or the evaluation sample of a stream
        with pytest.raises(selfsup.SelfSupError, match=r"shard-001\.tar:part1/sample00023: cannot read image"):
            load_dataset(uri, memory_budget=budget)
    items, _ = index_tar_shards(sorted((tmp_path / "shards").iterdir()), IMAGE_KINDS, None)
    storage = ItemStorage(items, image_decoder(8, "RGB", None), (3, 8, 8), "uint8", workers=1)
    assert storage.take(torch.tensor([22, 24])).shape == (2, 3, 8, 8)
    with pytest.raises(selfsup.SelfSupError, match=r"shard-001\.tar:part1/sample00023: cannot read image"):
        storage.take(torch.tensor([22, 23]))
    manifest = selfsup.prepare(uri, tmp_path / "cache", skip_bad=True, progress=False)
    assert manifest["skipped"] == 1 and "sample00023" in manifest["splits"]["train"]["skipped"][0]["file"]
    assert len(load_dataset(f"prepared:{tmp_path / 'cache'}").train) == 39


def test_tar_shards_refuse_what_they_cannot_read_in_one_line(tmp_path):
    import gzip

    write_shards(tmp_path / "shards", sizes=(5,))
    packed = tmp_path / "packed.tar"
    packed.write_bytes(gzip.compress((tmp_path / "shards" / "shard-000.tar").read_bytes()))
    with pytest.raises(selfsup.SelfSupError, match="not a plain tar file"):
        load_dataset(f"tar:{packed}")
    with pytest.raises(selfsup.SelfSupError, match="no tar shards match|not found"):
        load_dataset(f"tar:{tmp_path / 'none-{000..002}.tar'}")
    with pytest.raises(selfsup.SelfSupError, match="no .txt label member"):
        load_dataset(f"tar:{tmp_path / 'shards'}?label=txt")
    with pytest.raises(selfsup.SelfSupError, match="unknown option.*colour"):
        load_dataset(f"tar:{tmp_path / 'shards'}?colour=red")


def test_a_streamed_run_resumed_inside_an_epoch_continues_at_the_same_sample(tmp_path, monkeypatch):
    """Streaming from shards (worker processes decoding), a run dies in its second epoch, resumes from a checkpoint
    in the middle of its first and ends with the uninterrupted run's weights, bit for bit; a run that reads the
    shards in another order (another seed) does not."""
    write_shards(tmp_path / "shards")
    uri = f"tar:{tmp_path / 'shards'}?size=8"
    opts = dict(method="simclr", epochs=2, batch_size=32, seed=4, encoder_options=SMALL, monitor=False,
                method_options={"proj_hidden_dim": 64}, checkpoint_every_steps=4, threads=1, memory_budget=0)
    ref = selfsup.train(uri, out=tmp_path / "ref", **opts)
    assert ref.summary["data_path"].startswith("workers:") and ref.summary["steps"] == 2 * (256 // 32)
    monkeypatch.setenv(FAULT_NONFINITE_STEP, "14")  # 8 steps an epoch: the last good checkpoint is step 4 of epoch 1
    with pytest.raises(selfsup.SelfSupError, match="last good checkpoint \\(step 12\\)"):
        selfsup.train(uri, out=tmp_path / "run", **opts)
    monkeypatch.delenv(FAULT_NONFINITE_STEP)
    run = resume(tmp_path / "run", progress=False)
    assert run.summary["resumed_from_step"] == 12
    assert_same_weights(tmp_path / "ref", tmp_path / "run")
    selfsup.train(uri, out=tmp_path / "other", **{**opts, "seed": 5})
    with pytest.raises(AssertionError):
        assert_same_weights(tmp_path / "ref", tmp_path / "other")


def test_two_torchrun_processes_train_from_disjoint_shards(tmp_path):
    from test_distributed import free_port

    write_shards(tmp_path / "shards")
    out = tmp_path / "runs" / "ddp"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "-m", "selfsup", "train", "--data", f"tar:{tmp_path / 'shards'}?size=8",
           "--memory-budget", "0", "--epochs", "1", "--batch-size", "16", "--device", "cpu", "--threads", "1",
           "--no-monitor", "--encoder-option", "widths=[16,32,32,32]", "--method-option", "proj_hidden_dim=64",
           "--no-eval", "--json", "--out", out]
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])["summary"]
    assert summary["world_size"] == 2 and summary["data_path"].startswith("workers:")
    assert summary["steps"] == 120 // 16  # the smaller process stream (shards 0, 2, 4) sets the epoch's steps
