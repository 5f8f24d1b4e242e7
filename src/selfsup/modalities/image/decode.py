"""One image file to a fixed-size uint8 array, the same way for `folder:PATH` (in memory) and `selfsup prepare`
(a memory-mapped cache), so both give identical pixels.

- JPEG files are decoded in Pillow's draft mode at the smallest DCT scale (1/2, 1/4, 1/8) that still gives at
  least the target size: 2-8x less decoding for photographs much larger than the training size.
- EXIF orientation is applied (a phone photo taken upright stays upright).
- Modes: 16-bit greyscale (I;16 and 32-bit I) is scaled to 8 bits (value / 257), not clipped; images with
  transparency (RGBA, LA, palette with a transparent colour) are composited on white; palette, CMYK, YCbCr and
  1-bit images are converted by Pillow.
- Resize filter: bilinear with Pillow's antialiasing support scaled to the reduction (`Image.resize` with
  BILINEAR), to size x size (the aspect ratio is not kept, as before).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple, Union

import numpy as np

from ...errors import DataError

RESIZE_FILTER = "bilinear"
GREY_MODES = ("L", "1", "I;16", "I;16B", "I;16L", "I;16N", "I")
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class Header(NamedTuple):
    """What a file's header says, without decoding its pixels."""

    width: int
    height: int
    mode: str


Encoded = Union[Path, bytes]  # a file, or an encoded image's bytes (a tar member, a Parquet or Arrow cell)


def open_image(source: Encoded, max_pixels: int | None = None, where: str | None = None):
    """Pillow's lazy open of a file or of encoded bytes, with the decompression-bomb limit at `max_pixels` and
    errors as one-line DataErrors naming `where` (default: the file)."""
    from PIL import Image, UnidentifiedImageError

    path = where or source
    if max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        return Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{path}: refused as a possible decompression bomb ({exc}); if the file is trusted, "
                        "allow larger images with ?max_pixels=N") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot read image ({exc.__class__.__name__}: {exc})") from None


def read_header(source: Encoded, max_pixels: int | None = None, where: str | None = None) -> Header:
    with open_image(source, max_pixels, where) as im:
        return Header(im.size[0], im.size[1], im.mode)


def default_size_and_mode(headers: list[Header]) -> tuple[int, str]:
    """`folder:PATH`'s defaults: the images' own side when all are square and the same size, else 64 pixels;
    greyscale when every image is, else RGB."""
    sizes = {(h.width, h.height) for h in headers}
    (w, h), = sizes if len(sizes) == 1 else {(64, 64)}
    size = w if w == h else 64
    mode = "L" if all(h.mode in GREY_MODES for h in headers) else "RGB"
    return size, mode


def to_mode(im, mode: str):
    """`im` in mode L or RGB: 16-bit scaled to 8 bits, transparency composited on white."""
    from PIL import Image

    if im.mode in SIXTEEN_BIT:
        grey = np.clip(np.asarray(im, dtype=np.float64) / 257.0, 0, 255).round().astype(np.uint8)
        im = Image.fromarray(grey)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    return im.convert(mode)


def decode(source: Encoded, size: int, mode: str, max_pixels: int | None = None, where: str | None = None
           ) -> np.ndarray:
    """The image in `source` (a file, or encoded bytes from `where`) as uint8 [C, size, size] (C = 1 for mode L,
    3 for RGB)."""
    from PIL import Image, ImageOps

    path = where or source
    try:
        with open_image(source, max_pixels, where) as im:
            if im.format == "JPEG":
                im.draft("L" if mode == "L" else "RGB", (size, size))
            im.load()
            im = ImageOps.exif_transpose(im)
            im = to_mode(im, mode).resize((size, size), Image.BILINEAR)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt pixel data
        raise DataError(f"{path}: cannot read image ({exc.__class__.__name__}: {exc})") from None
    arr = np.asarray(im)
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))
