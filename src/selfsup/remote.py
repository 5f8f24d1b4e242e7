"""Shards that live elsewhere: in object storage or on a web server (`s3://`, `https://`, `gs://`, ... through fsspec,
the optional extra 'remote'), or behind a command (`pipe:COMMAND`, as WebDataset has it: the command writes the shard
to its standard output).

What the shard readers (shard_readers) get from a remote shard:
- a listing: `list_files` turns a glob (where the store lists: S3, GCS, not plain HTTP) or a prefix ending in `/`
  into URLs; brace ranges `{000..099}` are expanded before (shard_readers.expand_braces);
- positioned reads: `read_range(url, offset, size)`, one ranged request (HTTP Range, S3 GetObject Range), the way a
  sample is read during training;
- a seekable file: `open_remote(url)` reads blocks of BLOCK bytes (the last few kept), for tarfile's pass over the
  headers when a shard is indexed and for pyarrow's Parquet reader (footer, row groups);
- `pipe:` commands cannot seek: the shard is run through the command once into an unlinked temporary file (the last
  PIPE_KEEP shards per process) and read by position there.

Failures: every request is retried after RETRY_DELAYS (exponential backoff, jittered) when the connection dropped,
timed out, returned fewer bytes than asked, or the server answered 5xx, 408 or 429; a missing object, a refusal
(other 4xx) or a missing fsspec implementation fails at once. After the last retry: one line naming the URL, the
byte range and the last error. A read returns all the bytes asked for or raises, so a sample is never lost or
half-read; the samples' order is an index tensor (items.ItemStorage), so a resumed run continues at the same sample.
Credentials and endpoints come from the stores' usual settings (for S3: AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...;
or fsspec's FSSPEC_S3_* variables).
"""
from __future__ import annotations

import io
import os
import random
import re
import subprocess
import tempfile
import time
from collections import OrderedDict
from typing import Any, Callable, TypeVar

from .errors import ConfigError, DataError

RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # seconds before each retry (about a minute in all)
BLOCK = 8 << 20  # bytes per read of a seekable remote file
BLOCKS_KEPT = 4
PIPE_KEEP = 2  # pipe: shards kept (as temporary files) per process
CONNECT_TIMEOUT, READ_TIMEOUT = 30.0, 60.0  # seconds, for http(s):// (a stalled answer is retried after them)
TRANSIENT_STATUS = {408, 429}  # besides 5xx
TRANSIENT_LIBRARIES = {"aiohttp", "botocore", "aiobotocore", "urllib3", "requests", "http", "ssl", "asyncio"}
_PROTOCOL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
T = TypeVar("T")


def is_remote(location: str) -> bool:
    """A URL with a protocol (other than file://) or a pipe: command."""
    m = _PROTOCOL.match(str(location))
    return str(location).startswith("pipe:") or (m is not None and m.group(1).lower() != "file")


def is_pipe(location: str) -> bool:
    return str(location).startswith("pipe:")


class ShortRead(OSError):
    """A response with fewer bytes than asked for (a connection dropped mid-body)."""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an fsspec backend's exception carries (aiohttp's `status`, botocore's response), if any."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


def transient(exc: BaseException) -> bool:
    """Worth retrying: a dropped or timed-out connection, a short body, 5xx/408/429; not a missing or refused
    object, nor an error of selfsup's own."""
    if isinstance(exc, (DataError, ConfigError, ImportError, FileNotFoundError, PermissionError, IsADirectoryError,
                        NotADirectoryError)):
        return False
    status = http_status(exc)
    if status is not None:
        return status >= 500 or status in TRANSIENT_STATUS
    library = type(exc).__module__.split(".")[0]
    return isinstance(exc, (OSError, TimeoutError, EOFError)) or library in TRANSIENT_LIBRARIES


def describe(exc: BaseException) -> str:
    status = http_status(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
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
            if isinstance(exc, FileNotFoundError):
                raise DataError(f"{what}: not found") from None
            if isinstance(exc, PermissionError):
                raise DataError(f"{what}: access denied ({describe(exc)})") from None
            if not transient(exc):
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
    if pattern.endswith("/"):
        found = retrying(lambda: fs.find(path), f"{pattern} (listing)")
        return sorted(fs.unstrip_protocol(p) for p in found if p.lower().endswith(suffixes))
    if any(c in path for c in "*?["):
        return sorted(fs.unstrip_protocol(p) for p in retrying(lambda: fs.glob(path), f"{pattern} (listing)"))
    return [pattern]


_SIZES: dict[str, int] = {}  # inherited by forked processes


def size(url: str) -> int:
    """A remote file's size in bytes (asked once)."""
    if url not in _SIZES:
        if is_pipe(url):
            _SIZES[url] = os.fstat(pipe_copy(url).fileno()).st_size
        else:
            fs, path = filesystem(url)
            _SIZES[url] = int(retrying(lambda: fs.size(path), url))
    return _SIZES[url]


def read_range(url: str, offset: int, count: int) -> bytes:
    """Bytes [offset, offset + count) of a remote file, whole or a DataError."""
    if is_pipe(url):
        return os.pread(pipe_copy(url).fileno(), count, offset)
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
    """A seekable binary file over a remote shard (over a pipe: shard's temporary copy for pipe: commands)."""
    return io.BufferedReader(RemoteFile(url), buffer_size=1 << 16)


_PIPES: OrderedDict[tuple[int, str], Any] = OrderedDict()


def pipe_copy(url: str) -> Any:
    """pipe:COMMAND's output in an unlinked temporary file (the command rerun after RETRY_DELAYS while it fails);
    the last PIPE_KEEP per process are kept."""
    key = (os.getpid(), url)
    if key in _PIPES:
        _PIPES.move_to_end(key)
        return _PIPES[key]
    for old in [k for k in _PIPES if k[0] != os.getpid()]:  # copies inherited from a parent process
        del _PIPES[old]
    command = url[len("pipe:"):]

    def run() -> Any:
        out = tempfile.TemporaryFile(prefix="selfsup-pipe-")
        result = subprocess.run(command, shell=True, stdout=out, stderr=subprocess.PIPE)
        if result.returncode != 0:
            out.close()
            error = result.stderr.decode(errors="replace").strip().splitlines()
            raise ShortRead(f"exit status {result.returncode}{': ' + error[-1] if error else ''}")
        known, got = _SIZES.get(url), os.fstat(out.fileno()).st_size
        if known is not None and got != known:
            out.close()
            raise ShortRead(f"wrote {got} bytes, {known} the first time")
        return out
    _PIPES[key] = retrying(run, url)
    while len(_PIPES) > PIPE_KEEP:
        _PIPES.popitem(last=False)[1].close()
    return _PIPES[key]
