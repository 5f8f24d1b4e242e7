"""Shards that live elsewhere: in object storage or on a web server (`s3://`, `https://`, `gs://`, ... through fsspec,
the optional extra 'remote'), or behind a command (`pipe:COMMAND`, as WebDataset has it: the command writes the shard
to its standard output).

What the shard readers (shard_readers) get from a remote shard:
- a listing: `list_files` turns a glob (where the store lists: S3, GCS, not plain HTTP) or a prefix ending in `/`
  into URLs; brace ranges `{000..099}` are expanded before (shard_readers.expand_braces);
- positioned reads: `read_range(url, offset, size)`, one ranged request (HTTP Range, S3 GetObject Range), the way a
  sample is read during training; `ReadAhead` serves a process that reads a shard's samples in order (decoding it
  whole, scanning its headers) from one request of up to READ_AHEAD bytes instead of one request a sample;
- a seekable file: `open_remote(url)` reads blocks of BLOCK bytes (the last few kept), for tarfile's pass over the
  headers when a shard is indexed and for pyarrow's Parquet reader (footer, row groups);
- `pipe:` commands cannot seek: the command runs once per shard into a local copy (`pipe_copy`: in
  $SELFSUP_PIPE_CACHE, else ~/.cache/selfsup/pipe, named by a digest of the command, renamed into place when
  complete), which every process then reads by position; the copies stay for later runs and resumes (delete the
  folder to fetch again).

Failures: every request is retried after RETRY_DELAYS (exponential backoff, jittered) when the connection dropped,
was refused or timed out, returned fewer bytes than asked, or the server answered 5xx, 408 or 429; a missing
object, a refusal (other 4xx), bad credentials or parameters, or a missing fsspec implementation fail at once; a
failing pipe: command is run at most twice more (PIPE_RETRY_DELAYS), one that cannot run (exit 126, 127) once.
After the last retry: one line naming the URL, the byte range and the last error. A read returns all the bytes
asked for or raises, so a sample is never lost or half-read; the samples' order is an index tensor
(items.ItemStorage), so a resumed run continues at the same sample.
Credentials and endpoints come from the stores' usual settings (for S3: AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...;
or fsspec's FSSPEC_S3_* variables).
"""
from __future__ import annotations

import hashlib
import io
import os
import random
import re
import subprocess
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, TypeVar

from .errors import ConfigError, DataError

RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # seconds before each retry (about a minute in all)
BLOCK = 8 << 20  # bytes per read of a seekable remote file
BLOCKS_KEPT = 4
READ_AHEAD = 1 << 20  # bytes one request fetches for a process that reads a remote shard's samples in order
CONNECT_TIMEOUT, READ_TIMEOUT = 30.0, 60.0  # seconds, for http(s):// (a stalled answer is retried after them)
TRANSIENT_STATUS = {408, 429}  # besides 5xx
TRANSIENT_CLASSES = {"ConnectionError", "TimeoutError", "ClientConnectionError", "ClientPayloadError",
                     "HTTPClientError", "IncompleteRead", "RemoteDisconnected", "ProtocolError"}  # along each MRO
_PROTOCOL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
T = TypeVar("T")


def is_remote(location: str) -> bool:
    """A URL with a protocol (other than file://) or a pipe: command."""
    m = _PROTOCOL.match(str(location))
    return str(location).startswith("pipe:") or (m is not None and m.group(1).lower() != "file")


def is_pipe(location: str) -> bool:
    return str(location).startswith("pipe:")


class ShortRead(ConnectionError):
    """A response with fewer bytes than asked for (a connection dropped mid-body)."""


def causes(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from (fsspec backends wrap their clients' errors)."""
    chain = [exc]
    while len(chain) < 8 and (chain[-1].__cause__ or chain[-1].__context__) is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    return chain


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an fsspec backend's exception carries (aiohttp's `status`, botocore's response), if any."""
    for e in causes(exc):
        status = getattr(e, "status", None)
        if isinstance(status, int):
            return status
        response = getattr(e, "response", None)
        if isinstance(response, dict) and response.get("ResponseMetadata", {}).get("HTTPStatusCode"):
            return int(response["ResponseMetadata"]["HTTPStatusCode"])
    return None


def transient(exc: BaseException) -> bool:
    """Worth retrying: an answer 5xx, 408 or 429, else a dropped, refused or timed-out connection or a short body
    (by the exception classes of the standard library, aiohttp, botocore and urllib3); not a missing or refused
    object, bad credentials or parameters, nor an error of selfsup's own."""
    if isinstance(exc, (DataError, ConfigError)):
        return False
    status = http_status(exc)
    if status is not None:
        return status >= 500 or status in TRANSIENT_STATUS
    return any(k.__name__ in TRANSIENT_CLASSES for e in causes(exc) for k in type(e).__mro__)


def describe(exc: BaseException) -> str:
    status = http_status(exc)
    text = "; ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    return f"{type(exc).__name__}{f' (HTTP {status})' if status else ''}{f': {text}' if text else ''}"


def retrying(call: Callable[[], T], what: str, delays: tuple[float, ...] | None = None) -> T:
    """call(), retried after each of `delays` (default RETRY_DELAYS, each jittered to 50-100%) while it fails
    transiently; a one-line DataError naming `what` when it fails for good."""
    delays = RETRY_DELAYS if delays is None else delays
    jitter = random.Random()
    for attempt in range(len(delays) + 1):
        try:
            return call()
        except Exception as exc:
            if isinstance(exc, (DataError, ConfigError)):
                raise
            if not transient(exc):
                if isinstance(exc, FileNotFoundError):
                    raise DataError(f"{what}: not found") from None
                if isinstance(exc, PermissionError):
                    raise DataError(f"{what}: access denied ({describe(exc)})") from None
                raise DataError(f"{what}: {describe(exc)}") from None
            if attempt == len(delays):
                raise DataError(f"{what}: {describe(exc)} (gave up after {attempt + 1} attempts)") from None
            time.sleep(delays[attempt] * jitter.uniform(0.5, 1.0))
    raise AssertionError("unreachable")


_FILESYSTEMS: dict[tuple[int, str], Any] = {}


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem for `url` (one per protocol and process) and the path within it."""
    import fsspec

    protocol = _PROTOCOL.match(url).group(1).lower()
    key = (os.getpid(), protocol)
    if key not in _FILESYSTEMS:
        try:
            _FILESYSTEMS[key] = fsspec.filesystem(protocol, **filesystem_options(protocol))
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"{url}: cannot read {protocol}:// ({exc}); pip install 'selfsup[remote]' (fsspec, "
                              "aiohttp, s3fs) or the fsspec implementation for it") from None
    fs = _FILESYSTEMS[key]
    return fs, fs._strip_protocol(url)


def filesystem_options(protocol: str) -> dict[str, Any]:
    """http(s): aiohttp's timeouts per connection and per read instead of its 5 minutes for a whole answer."""
    if protocol not in ("http", "https"):
        return {}
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
    return {"client_kwargs": {"timeout": timeout}}


def list_files(pattern: str, suffixes: tuple[str, ...]) -> list[str]:
    """The URLs a remote pattern names: a glob's matches, a prefix ending in `/` (its files with `suffixes`), or
    the URL itself (checked when it is read); pipe: commands are taken as they are."""
    if is_pipe(pattern):
        return [pattern]
    fs, path = filesystem(pattern)
    if pattern.endswith("/"):  # the files in that folder, as for a local folder (not its sub-folders)
        found = retrying(lambda: fs.ls(path, detail=True), f"{pattern} (listing)")
        return sorted(fs.unstrip_protocol(f["name"]) for f in found
                      if f.get("type") == "file" and f["name"].lower().endswith(suffixes))
    if any(c in path for c in "*?["):
        found = retrying(lambda: fs.glob(path, detail=True), f"{pattern} (listing)")
        return sorted(fs.unstrip_protocol(name) for name, f in found.items() if f.get("type") == "file")
    return [pattern]


_SIZES: dict[str, int] = {}  # inherited by forked processes


def size(url: str) -> int:
    """A remote file's size in bytes (asked once)."""
    if url not in _SIZES:
        fs, path = filesystem(url)
        known = retrying(lambda: fs.info(path), url).get("size")
        if known is None:
            raise DataError(f"{url}: the server does not say the file's size (no Content-Length); shards must be "
                            "read by byte range")
        _SIZES[url] = int(known)
    return _SIZES[url]


def read_range(url: str, offset: int, count: int) -> bytes:
    """Bytes [offset, offset + count) of a remote file, whole or a DataError."""
    if count == 0:
        return b""
    fs, path = filesystem(url)

    def read() -> bytes:
        data = fs.cat_file(path, start=offset, end=offset + count)
        if len(data) < count:
            raise ShortRead(f"{len(data)} of {count} bytes")
        if len(data) > count:
            raise DataError(f"{url}: answered {len(data)} bytes for a range of {count}; the server must support "
                            "HTTP range requests")
        return data
    return retrying(read, f"{url} (bytes {offset}-{offset + count - 1})")


class ReadAhead:
    """The span of a remote file one process fetched last, and the item it read last. A read inside the span is
    served from memory; the read of the item after the last one (in order, as when a shard is decoded whole or its
    headers scanned) fetches [offset, ahead) in one request, `ahead` being where the reader's next items end (at
    most READ_AHEAD bytes on); any other read fetches just its bytes. So a shard read in order costs one request a
    READ_AHEAD, and a shuffled read one request a sample, as before. Where a span cannot be read (a shard cut short
    since it was indexed, a server refusing long ranges) the item is read alone, and that file is read item by item
    from then on. A copy made by pickling starts empty."""

    def __init__(self) -> None:
        self._span: tuple[str, int, bytes] = ("", 0, b"")  # (url, offset, bytes), replaced whole
        self._last, self._refused, self._pid = -2, "", -1

    def read(self, url: str, offset: int, count: int, item: int, ahead: Callable[[], int]) -> bytes:
        if self._pid != os.getpid():
            self._span, self._last, self._refused, self._pid = ("", 0, b""), -2, "", os.getpid()
        span_url, start, data = self._span
        in_order = span_url == url and item == self._last + 1 and url != self._refused
        self._last = item
        if span_url == url and start <= offset and offset + count <= start + len(data):
            return data[offset - start:offset - start + count]
        stop = max(offset + count, ahead()) if in_order else offset + count
        try:
            data = read_range(url, offset, stop - offset)
        except DataError:
            if stop == offset + count:
                raise
            self._refused, data = url, read_range(url, offset, count)
        self._span = (url, offset, data)
        return data[:count]

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()


class RemoteFile(io.RawIOBase):
    """A remote file as a read-only seekable file, read in blocks of BLOCK bytes (the last BLOCKS_KEPT kept)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url, self.length, self.position = url, size(url), 0
        self.blocks: OrderedDict[int, bytes] = OrderedDict()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.length}[whence]
        self.position = max(0, base + offset)
        return self.position

    def block(self, k: int) -> bytes:
        if k not in self.blocks:
            start = k * BLOCK
            self.blocks[k] = read_range(self.url, start, min(BLOCK, self.length - start))
            while len(self.blocks) > BLOCKS_KEPT:
                self.blocks.popitem(last=False)
        return self.blocks[k]

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self.position < self.length:
            k, within = divmod(self.position, BLOCK)
            chunk = self.block(k)[within:within + len(view) - done]
            view[done:done + len(chunk)] = chunk
            done += len(chunk)
            self.position += len(chunk)
        return done


def open_remote(url: str) -> io.BufferedReader:
    """A seekable binary file over a remote shard read by byte range."""
    return io.BufferedReader(RemoteFile(url), buffer_size=1 << 16)


_LOCAL: dict[tuple[str | None, str], str] = {}  # (SELFSUP_PIPE_CACHE, command) -> its copy


def local_path(location: str) -> str | None:
    """The local file a shard location is read from: the location itself when it is local, a pipe: command's copy
    (pipe_copy, made on first use), None for a URL read by byte range."""
    if not is_remote(location):
        return location
    if not is_pipe(location):
        return None
    key = (os.environ.get("SELFSUP_PIPE_CACHE"), location)
    if key not in _LOCAL:
        _LOCAL[key] = str(pipe_copy(location))
    return _LOCAL[key]


PIPE_RETRY_DELAYS = (1.0, 4.0)  # a failing command is run at most three times
PERMANENT_EXITS = {126, 127}  # the command cannot run or does not exist


def pipe_folder() -> Path:
    """Where pipe: shards are copied: $SELFSUP_PIPE_CACHE, else ~/.cache/selfsup/pipe."""
    folder = Path(os.environ.get("SELFSUP_PIPE_CACHE") or Path.home() / ".cache" / "selfsup" / "pipe")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pipe_copy(url: str) -> Path:
    """The local copy of pipe:COMMAND's output, named by a digest of the command: run once (and at most twice more
    while it fails), written beside and renamed into place when complete, then reused by every process."""
    target = pipe_folder() / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".shard")
    if target.exists():
        return target
    command = url[len("pipe:"):]

    def run() -> Path:
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=target.name + ".", delete=False) as out:
            result = subprocess.run(command, shell=True, stdout=out, stderr=subprocess.PIPE)
        if result.returncode != 0:
            os.unlink(out.name)
            error = result.stderr.decode(errors="replace").strip().splitlines()
            text = f"exit status {result.returncode}{': ' + error[-1] if error else ''}"
            if result.returncode in PERMANENT_EXITS:
                raise DataError(f"{url}: {text}")
            raise ShortRead(text)
        os.replace(out.name, target)
        return target
    return retrying(run, url, PIPE_RETRY_DELAYS)
