"""Shards in object storage, on a web server and behind a command (remote.py), against servers on the loopback: an
HTTP server that answers 503 and drops connections mid-body at random (seeded), and moto's S3 server. The samples
read, streamed or prepared remotely are the local ones, byte for byte, whatever failed in between; a run streamed
from a flaky server or from S3 (and resumed there) ends with the weights of the same run on local shards."""

from pathlib import Path

import numpy as np
import pytest
import torch

import selfsup
from selfsup import remote
from selfsup.errors import ConfigError, DataError
from selfsup.loading import load_dataset
from selfsup.training.loop import FAULT_NONFINITE_STEP
from selfsup.training.session import resume
from conftest import run_cli
from servers import flaky_files, s3_server
from test_resume import SMALL, assert_same_weights
from test_streaming import SHARD_SIZES, write_parquet, write_shards

RUN = dict(method="simclr", epochs=2, batch_size=32, seed=4, encoder_options=SMALL, monitor=False,
           method_options={"proj_hidden_dim": 64}, checkpoint_every_steps=4, threads=1, memory_budget=0)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(remote, "RETRY_DELAYS", (0.01,) * 8)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote")
    write_shards(root / "shards")
    write_parquet(root / "images.parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    pq.write_table(pa.table({"a": rng.normal(size=60), "b": rng.normal(size=60), "label": np.arange(60) % 2}),
                   root / "table.parquet")
    return root


def test_shards_over_a_flaky_http_server_read_as_the_local_ones(data, tmp_path):
    local = load_dataset(f"tar:{data}/shards/shard-{{000..005}}.tar?size=16")
    with flaky_files(data, fault_rate=0.3, seed=1) as server:
        shards = f"tar:{server.url}/shards/shard-{{000..005}}.tar?size=16"
        memory = load_dataset(shards)
        assert torch.equal(memory.train.x, local.train.x) and np.array_equal(memory.train.y, local.train.y)
        streamed = load_dataset(shards, memory_budget=0).train.stream
        assert torch.equal(streamed.take(torch.arange(len(streamed))), local.train.x)
        selfsup.prepare(shards, tmp_path / "cache", progress=False)
        assert torch.equal(load_dataset(f"prepared:{tmp_path / 'cache'}").train.x, local.train.x)
        images = load_dataset(f"parquet:{server.url}/images.parquet?size=16", memory_budget=0)
        assert images.modality == "image" and images.train.stream.describe()["shards"] == 4
        table = load_dataset(f"parquet:{server.url}/table.parquet?label=label")
        assert table.modality == "tabular" and table.info["columns"] == ["a", "b"]
        assert server.faults["503"] > 5 and server.faults["drop"] > 5  # the schedule did fail requests


def counted_reads(monkeypatch) -> list[int]:
    """The byte counts of the ranged requests made from now on (remote.read_range counted, then called)."""
    asked, real = [], remote.read_range

    def counted(url, offset, count):
        asked.append(count)
        return real(url, offset, count)

    monkeypatch.setattr(remote, "read_range", counted)
    return asked


def test_a_shard_read_in_order_costs_one_request_a_read_ahead_and_a_shuffled_read_one_a_sample(data, monkeypatch):
    """Reading remote shards' samples in order asks for READ_AHEAD bytes at a time (here all of a shard's images in
    one request after its first), a shuffled read one request a sample; where a span is refused the shard is read
    item by item; the bytes equal the local shards' every way."""
    from selfsup import shard_readers
    from selfsup.shard_readers import index_tar_shards

    real = remote.read_range
    asked = counted_reads(monkeypatch)
    local, _ = index_tar_shards(sorted(str(p) for p in (data / "shards").iterdir()), ("jpg", "png"), None)
    with flaky_files(data, fault_rate=0.0) as server:
        urls = [f"{server.url}/shards/{Path(p).name}" for p in local.shard_paths]
        items, _ = index_tar_shards(urls, ("jpg", "png"), None)
        asked.clear()
        assert all(items.read(i) == local.read(i) for i in range(len(items)))
        assert len(asked) == 2 * len(SHARD_SIZES)  # each shard: its first image, then the rest at once
        shuffled, _ = index_tar_shards(urls, ("jpg", "png"), None)
        order = np.random.default_rng(0).permutation(len(items))
        asked.clear()
        assert all(shuffled.read(int(i)) == local.read(int(i)) for i in order)
        assert len(asked) > 0.95 * len(items)  # one request a sample, but where the order happens to be i, i + 1
        monkeypatch.setattr(shard_readers, "READ_AHEAD", 0)
        ahead_off, _ = index_tar_shards(urls, ("jpg", "png"), None)
        asked.clear()
        assert all(ahead_off.read(i) == local.read(i) for i in range(len(items)))
        assert len(asked) == len(items)  # the negative control: without read-ahead, one request a sample
        monkeypatch.setattr(shard_readers, "READ_AHEAD", remote.READ_AHEAD)
        alone, _ = index_tar_shards(urls, ("jpg", "png"), None)
        refused = []

        def no_long_ranges(url, offset, count):  # a server that refuses ranges longer than any one image
            if count > 16_384:
                refused.append(url)
                raise DataError(f"{url}: refused")
            return real(url, offset, count)

        monkeypatch.setattr(remote, "read_range", no_long_ranges)
        assert all(alone.read(i) == local.read(i) for i in range(len(items)))
        assert sorted(refused) == sorted(urls)  # each shard's first span refused, then read item by item


def test_the_default_size_and_mode_read_headers_in_runs_of_consecutive_items(data, monkeypatch):
    """Past HEADER_SAMPLES, the headers come in HEADER_RUNS runs of consecutive items: remotely a request or three a
    run (its first item, then the rest at once; a run crossing into the next shard), where as many scattered
    headers cost one request each."""
    from selfsup.modalities.image import encoded
    from selfsup.shard_readers import index_tar_shards

    monkeypatch.setattr(encoded, "HEADER_SAMPLES", 40)
    monkeypatch.setattr(encoded, "HEADER_RUNS", 4)
    positions = encoded.header_positions(sum(SHARD_SIZES))
    assert len(positions) == 40 and len(set(positions.tolist())) == 40 and positions.max() < sum(SHARD_SIZES)
    assert (np.diff(positions) == 1).sum() == 36  # four runs of ten
    with flaky_files(data, fault_rate=0.0) as server:
        urls = [f"{server.url}/shards/shard-{s:03d}.tar" for s in range(len(SHARD_SIZES))]
        items, _ = index_tar_shards(urls, ("jpg", "png"), None)
        local, _ = index_tar_shards(sorted(str(p) for p in (data / "shards").iterdir()), ("jpg", "png"), None)
        asked = counted_reads(monkeypatch)
        assert encoded.size_and_mode(items, None, None, None) == encoded.size_and_mode(local, None, None, None)
        assert len(asked) <= 3 * 4
        asked.clear()
        monkeypatch.setattr(encoded, "header_positions", lambda n: np.linspace(0, n - 1, 40).round().astype(int))
        encoded.size_and_mode(items, 16, None, None)
        assert len(asked) == 40  # the negative control: scattered headers, one request each


def test_a_server_that_keeps_failing_or_lacks_the_file_is_named_in_one_line(data):
    with flaky_files(data, fault_rate=1.0) as server:
        with pytest.raises(DataError, match=r"shard-000\.tar.*(HTTP 503|ClientPayloadError).*gave up after 9 attempts"
                           ) as err:
            load_dataset(f"tar:{server.url}/shards/shard-000.tar")
        assert "\n" not in str(err.value)
    with flaky_files(data) as server:
        with pytest.raises(DataError, match=r"shard-006\.tar: not found"):
            load_dataset(f"tar:{server.url}/shards/shard-{{000..009}}.tar")
    with pytest.raises(ConfigError, match=r"cannot read nosuch://.*selfsup\[remote\]"):
        load_dataset("tar:nosuch://bucket/shard.tar")


def test_a_run_streamed_from_a_flaky_server_equals_the_run_on_local_shards(data, tmp_path):
    ref = selfsup.train(f"tar:{data}/shards?size=8", out=tmp_path / "local", **RUN)
    assert ref.summary["data_path"].startswith("workers:")
    with flaky_files(data, fault_rate=0.2, seed=2) as server:
        selfsup.train(f"tar:{server.url}/shards/shard-{{000..005}}.tar?size=8", out=tmp_path / "http", **RUN)
        assert sum(server.faults.values()) > 10
    assert_same_weights(tmp_path / "local", tmp_path / "http")


def test_s3_shards_list_stream_and_resume_at_the_same_sample(data, tmp_path, monkeypatch):
    selfsup.train(f"tar:{data}/shards?size=8", out=tmp_path / "local", **RUN)
    with s3_server() as endpoint:
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="data")
        for path in sorted((data / "shards").iterdir()):
            s3.upload_file(str(path), "data", f"train/{path.name}")
        s3.upload_file(str(data / "shards" / "shard-000.tar"), "data", "train/old/backup.tar")  # not in train/
        local = load_dataset(f"tar:{data}/shards?size=16")
        assert remote.read_range("s3://data/train/shard-000.tar", 5, 0) == b""
        for pattern in ("s3://data/train/*.tar", "s3://data/train/", "s3://data/train/shard-{000..005}.tar"):
            assert torch.equal(load_dataset(f"tar:{pattern}?size=16").train.x, local.train.x), pattern
        uri = "tar:s3://data/train/*.tar?size=8"
        monkeypatch.setenv(FAULT_NONFINITE_STEP, "14")  # dies in epoch 2; the last good checkpoint is step 12
        with pytest.raises(selfsup.SelfSupError, match="last good checkpoint \\(step 12\\)"):
            selfsup.train(uri, out=tmp_path / "s3", **RUN)
        monkeypatch.delenv(FAULT_NONFINITE_STEP)
        assert resume(tmp_path / "s3", progress=False).summary["resumed_from_step"] == 12
    assert_same_weights(tmp_path / "local", tmp_path / "s3")


def test_pipe_commands_run_once_per_shard_and_fail_in_one_line(data, tmp_path, monkeypatch):
    """Each command runs once, into a local copy every process reads (loading, streaming in a shuffled order,
    prepare's worker processes); a command that fails is named with its exit status and last line of stderr."""
    monkeypatch.setenv("SELFSUP_PIPE_CACHE", str(tmp_path / "copies"))
    runs = tmp_path / "runs.txt"
    uri = f"tar:pipe:echo run >> {runs}; cat {data}/shards/shard-{{000..005}}.tar?size=16"
    local = load_dataset(f"tar:{data}/shards?size=16")
    piped = load_dataset(uri, memory_budget=0).train.stream
    assert len(piped) == sum(SHARD_SIZES)
    order = torch.randperm(len(piped), generator=torch.Generator().manual_seed(0))
    assert torch.equal(piped.take(order), local.train.x[order])
    selfsup.prepare(uri, tmp_path / "cache", workers=2, progress=False)
    assert torch.equal(load_dataset(f"prepared:{tmp_path / 'cache'}").train.x, local.train.x)
    assert runs.read_text().count("run") == len(SHARD_SIZES)
    with pytest.raises(DataError, match=r"pipe:cat .*shard-404\.tar: .*exit status 1: cat: .*No such file"):
        load_dataset(f"tar:pipe:cat {data}/shards/shard-404.tar")
    with pytest.raises(DataError, match=r"pipe:no-such-command-here: exit status 127: .*not found$"):
        load_dataset("tar:pipe:no-such-command-here")


def test_what_is_retried_and_what_fails_at_once():
    """Retried: 5xx, 408, 429, dropped or refused connections and short bodies, also when a backend wraps them (s3fs
    raises OSError from botocore's error; fsspec's HTTP size FileNotFoundError from aiohttp's); not: other 4xx,
    missing objects, bad credentials or parameters."""
    import aiohttp
    from botocore.exceptions import ClientError, NoCredentialsError, ParamValidationError

    def wrapped(outer, inner):
        try:
            raise inner
        except Exception as exc:
            try:
                raise outer from exc
            except Exception as final:
                return final

    def s3(status):
        return ClientError({"Error": {"Code": str(status)}, "ResponseMetadata": {"HTTPStatusCode": status}},
                           "GetObject")

    def http(status):
        return aiohttp.ClientResponseError(None, (), status=status)

    retried = [s3(503), wrapped(OSError("s3fs"), s3(500)), http(429), http(408), aiohttp.ServerDisconnectedError(),
               aiohttp.ClientPayloadError("cut"), ConnectionResetError(), TimeoutError(), remote.ShortRead("1 of 2"),
               wrapped(FileNotFoundError("https://h/a.tar"), http(503))]
    failed = [s3(403), wrapped(OSError("s3fs"), s3(416)), wrapped(FileNotFoundError("k"), s3(404)), http(404),
              NoCredentialsError(), ParamValidationError(report="bad bucket name"), FileNotFoundError("x"),
              ValueError("a bug"), DataError("ours")]
    assert [remote.transient(e) for e in retried] == [True] * len(retried)
    assert [remote.transient(e) for e in failed] == [False] * len(failed)
    assert remote.describe(ParamValidationError(report="bad bucket name")) == \
        "ParamValidationError: Parameter validation failed:; bad bucket name"


def test_the_cli_trains_from_http_shards(data, tmp_path):
    """The command line reads URLs (with the real retry delays: a few faults only)."""
    with flaky_files(data, fault_rate=0.02, seed=3) as server:
        proc = run_cli("train", "--data", f"tar:{server.url}/shards/shard-{{000..005}}.tar?size=8", "--epochs", "1",
                       "--batch-size", "32", "--encoder-option", "widths=[16,32,32,32]", "--threads", "1",
                       "--no-monitor", "--no-eval", "--quiet", "--memory-budget", "0", "--out", tmp_path / "run")
        faults = sum(server.faults.values())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "run" / "encoder.safetensors").exists() and faults > 0


def test_the_documented_retry_settings_are_the_code_s(monkeypatch):
    """docs/data-at-scale.md states the delays, the block size and the pipe: attempts as remote.py has them."""
    from pathlib import Path

    monkeypatch.undo()  # the real delays, not the quick ones of the other tests

    page = " ".join((Path(__file__).resolve().parents[1] / "docs" / "data-at-scale.md").read_text().split())
    delays = [f"{d:g}" for d in remote.RETRY_DELAYS]
    assert f"retried after {', '.join(delays[:-1])} and {delays[-1]} s" in page
    assert f"blocks of {remote.BLOCK >> 20} MiB" in page
    assert f"run at most {len(remote.PIPE_RETRY_DELAYS) + 1} times" in page.replace("three", "3")
