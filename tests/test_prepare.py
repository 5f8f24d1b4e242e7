"""`selfsup prepare` and `prepared:DIR`: an image folder decoded once, in parallel, into a memory-mapped cache that
equals the in-memory folder source pixel for pixel; resumption, corrupt files, unfinished or damaged caches refused
in one line; `--cache`; image modes (16-bit, transparency, palette, EXIF orientation)."""
import importlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

import selfsup
from selfsup.loading import load_dataset
from selfsup.modalities import get_modality
from selfsup.modalities.image.decode import decode
from test_bad_input_corpus import assert_error
from test_bad_inputs import cli

prep = importlib.import_module("selfsup.preparation")  # the module (selfsup.prepare is the function)


def make_folder(root, n_per_class=6, corrupt=False):
    """Two classes of JPEG and PNG images of varied sizes and modes; optionally one corrupt file at the end."""
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for i in range(n_per_class):
            w, h = int(rng.integers(20, 60)), int(rng.integers(20, 60))
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            image = Image.fromarray(pixels)
            if i % 3 == 0:
                image.save(root / label / f"{i:02d}.jpg", quality=90)
            elif i % 3 == 1:
                image.convert("P", palette=Image.ADAPTIVE).save(root / label / f"{i:02d}.png")
            else:
                image.convert("RGBA").save(root / label / f"{i:02d}.png")
    if corrupt:
        (root / "dogs" / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def mapped_from(address: int, path) -> bool:
    """Whether `address` lies in a memory mapping of the file `path` (Linux /proc/self/maps)."""
    for line in open("/proc/self/maps"):
        fields = line.split()
        if len(fields) >= 6 and fields[5] == str(path):
            start, end = (int(v, 16) for v in fields[0].split("-"))
            if start <= address < end:
                return True
    return False


def test_prepared_cache_equals_the_folder_source(tmp_path):
    folder = make_folder(tmp_path / "photos")
    manifest = selfsup.prepare(f"folder:{folder}", tmp_path / "cache", size=16, workers=2, progress=False)
    assert manifest["splits"]["train"]["shape"] == [12, 3, 16, 16] and manifest["skipped"] == 0
    assert manifest["spec"]["resize_filter"] == "bilinear-antialias-torch-uint8"
    assert len(manifest["inputs_sha256"]) == 64
    cached, direct = load_dataset(f"prepared:{tmp_path / 'cache'}"), load_dataset(f"folder:{folder}?size=16")
    assert np.array_equal(cached.train.x.numpy(), direct.train.x.numpy())
    assert np.array_equal(cached.train.y, direct.train.y) and cached.info["classes"] == direct.info["classes"]
    assert mapped_from(cached.train.x.data_ptr(), tmp_path / "cache" / "train.x.u8")  # read in place, not copied
    # a finished cache of the same inputs is reused as it is; one of other settings is refused
    assert selfsup.prepare(f"folder:{folder}", tmp_path / "cache", size=16, progress=False) == manifest
    with pytest.raises(selfsup.SelfSupError, match="other inputs or settings"):
        selfsup.prepare(f"folder:{folder}", tmp_path / "cache", size=24, progress=False)


def test_corrupt_file_stops_or_is_skipped_and_an_interrupted_run_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(prep, "CHUNK", 4)  # 13 files: 4 chunks, the broken file in the last
    folder = make_folder(tmp_path / "photos", corrupt=True)
    cache = tmp_path / "cache"
    with pytest.raises(selfsup.SelfSupError, match="zz_broken.jpg: cannot read image"):  # the header, before any work
        selfsup.prepare(f"folder:{folder}", cache, workers=1, progress=False)
    with pytest.raises(selfsup.SelfSupError, match="zz_broken.jpg: cannot read image"):  # while decoding
        selfsup.prepare(f"folder:{folder}", cache, size=16, mode="RGB", workers=1, progress=False)
    state = json.loads((cache / prep.PROGRESS).read_text())
    assert sorted(state["done"]["train"]) == [0, 4, 8] and not (cache / prep.MANIFEST).exists()
    # the unfinished cache never looks complete
    with pytest.raises(selfsup.SelfSupError, match="not a finished prepared dataset.*interrupted"):
        load_dataset(f"prepared:{cache}")
    manifest = selfsup.prepare(f"folder:{folder}", cache, size=16, mode="RGB", workers=1, skip_bad=True,
                               progress=False)
    assert manifest["resumed_with"] == 12  # only the last chunk was decoded again
    assert manifest["skipped"] == 1 and manifest["splits"]["train"]["skipped"][0]["file"].endswith("zz_broken.jpg")
    ds = load_dataset(f"prepared:{cache}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "broken" not in p.name)
    assert len(ds.train) == 12 and not (cache / prep.PROGRESS).exists()
    expected = np.stack([decode(p, 16, "RGB") for p in files])
    assert np.array_equal(ds.train.x.numpy(), expected)  # compacted: the rows of the good files, in order


def test_damaged_or_foreign_caches_are_refused_in_one_line(tmp_path):
    folder = make_folder(tmp_path / "photos", n_per_class=3)
    cache = tmp_path / "cache"
    selfsup.prepare(f"folder:{folder}", cache, size=8, progress=False)
    data = cache / "train.x.u8"
    data.write_bytes(data.read_bytes()[:-10])  # truncated
    with pytest.raises(selfsup.SelfSupError, match="train.x.u8: .* bytes, the manifest says"):
        load_dataset(f"prepared:{cache}")
    with pytest.raises(selfsup.SelfSupError, match="prepared dataset folder not found"):
        load_dataset(f"prepared:{tmp_path / 'nothing'}")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(selfsup.SelfSupError, match="exists and is not empty"):
        selfsup.prepare(f"folder:{folder}", tmp_path / "other", progress=False)
    with pytest.raises(selfsup.SelfSupError, match="--size and --mode are for images .folder:, tar:"):
        selfsup.prepare("digits", tmp_path / "d", mode="L", progress=False)
    with pytest.raises(selfsup.SelfSupError, match="--workers 0: must be at least 1"):
        selfsup.prepare(f"folder:{folder}", tmp_path / "w", workers=0, progress=False)
    with pytest.raises(selfsup.SelfSupError, match="--size 2: must lie between 4 and 4096"):
        selfsup.prepare(f"folder:{folder}", tmp_path / "w", size=2, progress=False)
    with pytest.raises(selfsup.SelfSupError, match="size='abc' is not a whole number"):
        selfsup.prepare(f"folder:{folder}?size=abc", tmp_path / "w", progress=False)


def test_image_modes_exif_and_sixteen_bit(tmp_path):
    # 16-bit grey 32896 is 128 in 8 bits (not clipped to 255); transparent pixels become white
    Image.fromarray(np.full((8, 8), 32896, dtype=np.uint16)).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert decode(tmp_path / "deep.png", 8, "L").max() == 128
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert (decode(tmp_path / "clear.png", 8, "RGB") == 255).all()
    # EXIF orientation 6 (rotate 90 degrees clockwise to display): the stored left half becomes the top half
    stored = np.zeros((8, 16), dtype=np.uint8)
    stored[:, 8:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "turned.jpg", exif=exif.tobytes(), quality=95)
    upright = decode(tmp_path / "turned.jpg", 16, "L")[0].astype(int)
    assert upright[:8].mean() < 40 and upright[8:].mean() > 215, upright


def test_prepare_and_cache_from_the_command_line(tmp_path):
    folder = make_folder(tmp_path / "photos", n_per_class=8)
    proc = cli("prepare", f"folder:{folder}", "--out", tmp_path / "cache", "--size", "16")
    assert proc.returncode == 0, proc.stderr
    assert "train: 16 samples of 3x16x16 uint8" in proc.stdout and "--data prepared:" in proc.stdout
    run = tmp_path / "run"
    proc = cli("train", "--data", f"folder:{folder}?size=16", "--cache", tmp_path / "cache2", "--epochs", "1",
               "--batch-size", "8", "--threads", "1", "--encoder-option", "widths=[8,8,8,8]", "--no-eval",
               "--out", run)
    assert proc.returncode == 0, proc.stderr
    assert f"prepared:{tmp_path / 'cache2'}" in (run / "config.yaml").read_text()
    assert (tmp_path / "cache2" / "manifest.json").exists()
    assert_error(cli("prepare", "digits", "--out", tmp_path / "x", "--size", "8"), "--size and --mode are for images",
                 "digits is parsed as it is")
    assert_error(cli("train", "--data", f"prepared:{tmp_path / 'nope'}", "--out", tmp_path / "r2", "--epochs", "1"),
                 "nope", "not found")


def test_training_reads_the_cache_batch_by_batch(tmp_path):
    """The training storage of a prepared split reads rows with positioned reads (the same pixels as the mapped
    tensor); an in-memory split keeps the tensor storage."""
    import torch

    from selfsup.modalities import get_modality
    from selfsup.storage import FileRowStorage, TensorStorage

    folder = make_folder(tmp_path / "photos", n_per_class=5)
    selfsup.prepare(f"folder:{folder}", tmp_path / "cache", size=12, progress=False)
    ds = load_dataset(f"prepared:{tmp_path / 'cache'}")
    storage = get_modality("image").storage(ds.train, {})
    assert isinstance(storage, FileRowStorage) and len(storage) == 10
    idx = torch.tensor([7, 0, 3, 3, 9])
    assert torch.equal(storage.to(torch.device("cpu")).take(idx), ds.train.x[idx])
    assert storage.describe() == TensorStorage(ds.train.x).describe()
    assert type(get_modality("image").storage(load_dataset(f"folder:{folder}?size=12").train, {})) is TensorStorage


@pytest.mark.parametrize("source", ["ucr:GunPoint", "sklearn:wine"])
def test_series_and_tables_are_prepared_as_float_arrays(source, tmp_path):
    """Series and tables are parsed once (their sources' own readers) into float arrays read memory-mapped; the
    storage, labels, classes and a table's schema (kinds, categories) equal the source's, and training reads them."""
    memory = load_dataset(source)
    manifest = selfsup.prepare(source, tmp_path / "cache", progress=False)
    assert manifest["spec"]["modality"] == memory.modality
    assert manifest["splits"]["train"]["dtype"] == str(memory.train.x.numpy().dtype)
    prepared = load_dataset(f"prepared:{tmp_path / 'cache'}")
    assert prepared.modality == memory.modality and prepared.info["classes"] == memory.info["classes"]
    assert prepared.info["data_path"].startswith("memory-mapped:")
    for a, b in ((prepared.train, memory.train), (prepared.test, memory.test)):
        assert torch.equal(a.x.nan_to_num(-7.0), b.x.nan_to_num(-7.0)) and np.array_equal(a.y, b.y)
    modality = get_modality(memory.modality)
    assert modality.storage_record.of(prepared.train.x) == modality.storage_record.of(memory.train.x)
    assert mapped_from(prepared.train.x.data_ptr(), tmp_path / "cache" / manifest["splits"]["train"]["file"])
    assert selfsup.prepare(source, tmp_path / "cache", progress=False) == manifest  # finished: returned as it is
    run = selfsup.train(f"prepared:{tmp_path / 'cache'}", epochs=1, batch_size=32, monitor=False, threads=1)
    assert run.summary["train_samples"] == len(memory.train)
    with pytest.raises(selfsup.SelfSupError, match="--size and --mode are for images"):
        selfsup.prepare(source, tmp_path / "other", size=32, progress=False)


def pillow_reference(data: bytes, size: int, mode: str) -> np.ndarray:
    """Pillow alone: draft mode at the same DCT scale rule, conversion, Pillow's BILINEAR resize; uint8 [C, H, W]."""
    import io

    with Image.open(io.BytesIO(data)) as im:
        im.draft("L" if mode == "L" else "RGB", (size, size))
        arr = np.asarray(im.convert(mode).resize((size, size), Image.BILINEAR))
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def jpeg_files() -> list[bytes]:
    """Smooth images with edges (the case where reconstruction filters differ most): colour and grey, baseline and
    progressive, 4:2:0 and 4:4:4, from below the target size to 9x above it (DCT scales 1, 1/2, 1/4, 1/8)."""
    import io

    rng = np.random.default_rng(3)
    files = []
    for i, (w, h) in enumerate([(40, 52), (96, 96), (130, 110), (200, 260), (420, 390), (900, 700)] * 3):
        yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
        pixels = np.stack([np.sin(6 * xx + c) * 80 + 128 + 60 * ((xx + yy + c / 5) % 0.3 > 0.15)
                           for c in range(3)], -1) + rng.normal(0, 4, (h, w, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        image = image.convert("L") if i % 3 == 2 else image
        out = io.BytesIO()
        image.save(out, "JPEG", quality=int(rng.integers(75, 96)), progressive=i % 2 == 1, subsampling=i % 3 % 2 * 2)
        files.append(out.getvalue())
    return files


def test_the_jpeg_path_gives_pillows_pixels_within_one_grey_level():
    """libjpeg-turbo (simplejpeg) at Pillow's DCT scales + torch's antialiased uint8 bilinear resize: at most one grey
    level from Pillow's draft + BILINEAR on every pixel; negative control: libjpeg-turbo's nearest M/8 scale (what
    simplejpeg picks from min_height alone) fails that bound, so the check can tell the two apart."""
    import simplejpeg

    from selfsup.modalities.image import decode as dec

    files, worst = jpeg_files(), 0
    for data in files:
        for mode in ("RGB", "L"):
            assert dec.jpeg_pixels(data, 24, mode, None) is not None  # the fast path took it
            ours, ref = decode(data, 24, mode).astype(int), pillow_reference(data, 24, mode).astype(int)
            assert ours.shape == ref.shape == (3 if mode == "RGB" else 1, 24, 24)
            worst = max(worst, int(np.abs(ours - ref).max()))
    assert worst <= 1, worst
    m8 = [dec.resized(simplejpeg.decode_jpeg(data, "RGB", min_height=24, min_width=24), 24).astype(int)
          - pillow_reference(data, 24, "RGB").astype(int) for data in files]
    assert max(int(np.abs(d).max()) for d in m8) > 1


def test_files_the_jpeg_path_leaves_to_pillow(tmp_path):
    """CMYK JPEGs, EXIF-rotated JPEGs, PNGs, damaged JPEGs and images over the pixel limit take Pillow's path (and its
    one-line errors); an EXIF block without a rotation stays on the fast path."""
    import io

    from selfsup.modalities.image import decode as dec

    def saved(image, fmt="JPEG", **kw):
        out = io.BytesIO()
        image.save(out, fmt, **kw)
        return out.getvalue()

    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8))
    upright, turned = Image.Exif(), Image.Exif()
    upright[0x0112], turned[0x0112] = 1, 3
    assert dec.jpeg_pixels(saved(rgb, exif=upright.tobytes()), 16, "RGB", None) is not None
    for data in (saved(rgb.convert("CMYK")), saved(rgb, exif=turned.tobytes()), saved(rgb, "PNG")):
        assert dec.jpeg_pixels(data, 16, "RGB", None) is None
    for data in (saved(rgb.convert("CMYK")), saved(rgb, "PNG")):  # (the rotation: test_image_modes_exif_...)
        assert np.abs(decode(data, 16, "RGB").astype(int) - pillow_reference(data, 16, "RGB")).max() <= 1
    assert dec.jpeg_pixels(saved(rgb), 16, "RGB", 500) is None  # 1,200 pixels > 2 x max_pixels
    limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(selfsup.SelfSupError, match="decompression bomb"):
        decode(saved(rgb), 16, "RGB", max_pixels=500, where="big.jpg")
    assert Image.MAX_IMAGE_PIXELS == limit  # the process-wide limit is back (a later open is not refused)
    damaged = saved(rgb)[:300]
    assert dec.jpeg_pixels(damaged, 16, "RGB", None) is None
    with pytest.raises(selfsup.SelfSupError, match="cut.jpg: cannot read image"):
        decode(damaged, 16, "RGB", where="cut.jpg")
