"""One image file to a fixed-size uint8 array, the same way for `folder:PATH` (in memory) and `selfsup prepare`
(a memory-mapped cache), so both give identical pixels.

- JPEG files (baseline or progressive, greyscale or YCbCr, without an EXIF rotation) are decoded by libjpeg-turbo
  through simplejpeg at the smallest DCT scale (1/2, 1/4, 1/8, as Pillow's draft mode) that still gives at least the
  target size: 2-8x less decoding for photographs much larger than the training size, and no Pillow image object
  per file. Every other file (PNG, CMYK JPEGs, JPEGs whose EXIF orientation turns them, JPEGs that libjpeg-turbo
  reports as damaged, images over the decompression-bomb limit) goes through Pillow, with JPEG draft mode there too.
- EXIF orientation is applied (a phone photo taken upright stays upright).
- Modes: 16-bit greyscale (I;16 and 32-bit I) is scaled to 8 bits (value / 257), not clipped; images with
  transparency (RGBA, LA, palette with a transparent colour) are composited on white; palette, CMYK, YCbCr and
  1-bit images are converted by Pillow.
- Resize filter: bilinear with the antialiasing support scaled to the reduction, in torch's uint8 kernel
  (`interpolate(..., mode="bilinear", antialias=True)`, the algorithm of Pillow's BILINEAR resize: within one grey
  level of `Image.resize`, tested), to size x size (the aspect ratio is not kept). Both paths end in this one resize.
"""
from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import NamedTuple, Union

import numpy as np

from ...errors import DataError

RESIZE_FILTER = "bilinear-antialias-torch-uint8"
JPEG_DECODER = "simplejpeg (libjpeg-turbo), DCT-scaled"
GREY_MODES = ("L", "1", "I;16", "I;16B", "I;16L", "I;16N", "I")
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class Header(NamedTuple):
    """What a file's header says, without decoding its pixels."""

    width: int
    height: int
    mode: str


Encoded = Union[Path, bytes]  # a file, or an encoded image's bytes (a tar member, a Parquet or Arrow cell)
_PILLOW_LIMIT = threading.Lock()  # held while open_image changes Pillow's decompression-bomb limit


def open_image(source: Encoded, max_pixels: int | None = None, where: str | None = None):
    """Pillow's lazy open of a file or of encoded bytes, with the decompression-bomb limit at `max_pixels` and
    errors as one-line DataErrors naming `where` (default: the file)."""
    from PIL import Image, UnidentifiedImageError

    path = where or source
    with _PILLOW_LIMIT:  # Pillow's limit is process-wide: raised for this open only, then put back
        limit = Image.MAX_IMAGE_PIXELS
        if max_pixels:
            Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            return Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DataError(f"{path}: refused as a possible decompression bomb ({exc}); if the file is trusted, "
                            "allow larger images with ?max_pixels=N") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"{path}: cannot read image ({exc.__class__.__name__}: {exc})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = limit


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
    path = where or source
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read image ({exc.__class__.__name__}: {exc})") from None
    pixels = jpeg_pixels(data, size, mode, max_pixels)
    if pixels is None:
        pixels = pillow_pixels(data, size, mode, max_pixels, path)
    return resized(pixels, size)


def jpeg_pixels(data: bytes, size: int, mode: str, max_pixels: int | None) -> np.ndarray | None:
    """A plain JPEG decoded by libjpeg-turbo at the smallest DCT scale that keeps both sides >= `size`, as uint8
    [H, W] (mode L) or [H, W, 3] (RGB); None when the file needs Pillow (not a JPEG, CMYK, rotated by EXIF,
    over the pixel limit, or damaged: Pillow then decodes it or words the error)."""
    import simplejpeg

    if data[:3] != b"\xff\xd8\xff":
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if colorspace not in ("Gray", "YCbCr", "RGB") or width * height > pixel_limit(max_pixels):
        return None
    if exif_orientation(data) != 1:
        return None
    grey = mode == "L" or colorspace == "Gray"
    scale = dct_scale(width, height, size)
    try:
        pixels = simplejpeg.decode_jpeg(data, "GRAY" if grey else "RGB", min_height=-(-height // scale),
                                        min_width=-(-width // scale))
    except ValueError:
        return None
    if not grey:
        return pixels
    return pixels[..., 0] if mode == "L" else np.repeat(pixels, 3, axis=2)  # (a grey file, RGB wanted: repeated)


def dct_scale(width: int, height: int, size: int) -> int:
    """The JPEG scale 1/s, s in (1, 2, 4, 8), that Pillow's draft mode picks: the largest that keeps both sides at
    least `size` (libjpeg-turbo's other M/8 scales are not used: their reconstruction filter differs from a
    bilinear resize by up to a quarter of the range at edges)."""
    fit = min(width // size, height // size)
    return next(s for s in (8, 4, 2, 1) if fit >= s or s == 1)


def pixel_limit(max_pixels: int | None) -> int:
    """Pillow's decompression-bomb threshold (2x MAX_IMAGE_PIXELS, or 2x `max_pixels` when set): larger images
    take the Pillow path, which refuses them in its one-line message."""
    from PIL import Image

    return 2 * (max_pixels or Image.MAX_IMAGE_PIXELS or 2**62)


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag of a JPEG (1, upright, when it has no EXIF block); Pillow reads the block, only for
    files that carry one."""
    if b"Exif\x00\x00" not in data[:65536]:
        return 1
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:  # an unreadable EXIF block: Pillow's path decides
        return 0


def pillow_pixels(data: bytes, size: int, mode: str, max_pixels: int | None, path) -> np.ndarray:
    """Any image Pillow reads, with its EXIF orientation applied, in mode L or RGB as uint8 [H, W(, 3)]."""
    from PIL import ImageOps

    try:
        with open_image(data, max_pixels, str(path)) as im:
            if im.format == "JPEG":
                im.draft("L" if mode == "L" else "RGB", (size, size))
            im.load()
            im = ImageOps.exif_transpose(im)
            return np.array(to_mode(im, mode))  # (a writable copy: torch takes no read-only arrays)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt pixel data
        raise DataError(f"{path}: cannot read image ({exc.__class__.__name__}: {exc})") from None


def resized(pixels: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W] or [H, W, C] -> [C, size, size] by antialiased bilinear resampling in torch's uint8 kernel (the
    pixels stay channels-last in memory, the layout that kernel is vectorised for)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(pixels))
    x = (x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None])
    if tuple(x.shape[2:]) != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                            align_corners=False)
    return np.ascontiguousarray(x[0].numpy())
