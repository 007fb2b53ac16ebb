"""images.py on real files made from a real photo: every format and mode loads as float RGB [0,1] with
the right content; every kind of bad file gives its documented one-sentence error."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.errors import CnnlabError, ImageError
from cnnlab.images import (Preprocessing, bundled_photo, expand_image_paths, load_batches, load_image, load_images,
                           load_many, make_grid, normalize01, open_image, save_image, to_uint8)
from tests.conftest import child_peak_rss_mb, corrupt_tiff_bytes


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """scikit-image's coffee photo (real, 600x400), cut to 120x80 to keep the tests quick."""
    return Image.open(bundled_photo("coffee")).convert("RGB").resize((120, 80), Image.BILINEAR)


@pytest.fixture(scope="module")
def ref(photo) -> np.ndarray:
    return np.asarray(photo, dtype=np.float64) / 255


def _loaded(path: Path) -> np.ndarray:
    t = load_image(path)
    assert t.dtype == torch.float32 and t.dim() == 3 and t.shape[0] == 3
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    return t.permute(1, 2, 0).numpy().astype(np.float64)


@pytest.mark.parametrize("fmt,suffix,tol", [("PNG", ".png", 1e-6), ("BMP", ".bmp", 1e-6), ("TIFF", ".tif", 1e-6),
                                            ("JPEG", ".jpg", 0.03), ("WEBP", ".webp", 0.04)])
def test_rgb_formats_load_with_their_content(tmp_path, photo, ref, fmt, suffix, tol):
    path = tmp_path / f"coffee{suffix}"
    photo.save(path, fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    got = _loaded(path)
    assert got.shape == ref.shape
    assert np.abs(got - ref).mean() < tol  # lossless formats exactly, lossy ones within a few grey levels


def test_grayscale_becomes_three_equal_channels(tmp_path, photo):
    path = tmp_path / "gray.png"
    gray = photo.convert("L")
    gray.save(path)
    got = _loaded(path)
    assert np.allclose(got[..., 0], got[..., 1]) and np.allclose(got[..., 1], got[..., 2])
    assert np.allclose(got[..., 0], np.asarray(gray) / 255)


def test_rgba_drops_alpha_keeping_colour(tmp_path, photo, ref):
    rgba = photo.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    path = tmp_path / "rgba.png"
    rgba.save(path)
    assert np.allclose(_loaded(path), ref)


def test_palette_and_transparent_palette(tmp_path, photo):
    pal = photo.quantize(64)
    path = tmp_path / "palette.png"
    pal.save(path)
    assert np.allclose(_loaded(path), np.asarray(pal.convert("RGB")) / 255)
    pal.info["transparency"] = 0
    path2 = tmp_path / "palette_t.png"
    pal.save(path2, transparency=0)
    assert _loaded(path2).shape == (80, 120, 3)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path, photo):
    gray8 = np.asarray(photo.convert("L"), dtype=np.uint16)
    arr16 = gray8 * 257  # 0..65535, same picture
    path = tmp_path / "gray16.png"
    Image.fromarray(arr16).save(path)
    assert Image.open(path).mode.startswith("I")
    got = _loaded(path)
    assert np.abs(got[..., 0] - gray8 / 255).max() < 1 / 255 + 1e-9  # clipping would make it all white
    assert got.std() > 0.05


def test_gif_first_frame(tmp_path, photo):
    first, second = photo.quantize(64), photo.transpose(Image.FLIP_LEFT_RIGHT).quantize(64)
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second], duration=100)
    assert Image.open(path).n_frames == 2
    got = _loaded(path)
    f1 = np.asarray(first.convert("RGB")) / 255
    f2 = np.asarray(second.convert("RGB")) / 255
    assert np.abs(got - f1).mean() < np.abs(got - f2).mean() / 5


def test_cmyk_jpeg(tmp_path, photo, ref):
    path = tmp_path / "cmyk.jpg"
    photo.convert("CMYK").save(path, quality=95)
    assert np.abs(_loaded(path) - ref).mean() < 0.05


def test_exif_orientation_is_honoured(tmp_path, photo, ref):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored pixels are the upright photo turned CCW
    photo.transpose(Image.ROTATE_90).save(path, quality=95, exif=exif)
    got = _loaded(path)
    assert got.shape == ref.shape  # upright again: 80 high, 120 wide
    assert np.abs(got - ref).mean() < 0.03


def test_bytes_pil_array_and_tensor_inputs_agree(tmp_path, photo, ref):
    path = tmp_path / "c.png"
    photo.save(path)
    via_path = load_image(path)
    assert torch.equal(load_image(path.read_bytes()), via_path)
    assert torch.equal(load_image(photo), via_path)
    assert torch.equal(load_image(np.asarray(photo)), via_path)
    assert torch.equal(load_image(via_path), via_path)
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        load_image(via_path * 255)


# -- bad files: each gives its documented sentence naming the file ------------------------------------
def _bomb_png(path: Path, width: int, height: int) -> None:
    """A valid 1x1 PNG whose header claims width x height (CRC fixed): decoding would allocate GBs."""
    import io
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8  # after the signature: length(4) 'IHDR'(4) data(13) crc(4)
    data[ihdr + 8:ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4:ihdr + 21])) & 0xFFFFFFFF
    data[ihdr + 21:ihdr + 25] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def test_bad_files_each_give_their_error(tmp_path, photo):
    good = tmp_path / "good.jpg"
    photo.save(good, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    corrupt = tmp_path / "corrupt.png"
    png = tmp_path / "ok.png"
    photo.save(png)
    raw = bytearray(png.read_bytes())
    raw[60:400] = bytes(340)  # zero the compressed pixel data: the header is fine, the data is not
    corrupt.write_bytes(bytes(raw))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("these are my notes, not a photo\n" * 20)
    bomb = tmp_path / "bomb.png"
    _bomb_png(bomb, 30000, 30000)

    cases = {truncated: "truncated or corrupt", corrupt: "truncated or corrupt", empty: "is empty",
             text: "not an image file", bomb: "decompression bomb", tmp_path / "missing.png": "does not exist",
             tmp_path: "is a directory"}
    for path, phrase in cases.items():
        with pytest.raises(ImageError) as info:
            load_image(path)
        msg = str(info.value)
        assert phrase in msg and str(path) in msg, (path, msg)
        assert "\n" not in msg and isinstance(info.value, CnnlabError)


def test_bomb_limit_is_adjustable(tmp_path):
    bomb = tmp_path / "big.png"
    _bomb_png(bomb, 3000, 3000)
    with pytest.raises(ImageError, match="decompression bomb"):
        open_image(bomb, max_pixels=1_000_000)


def test_load_many_skips_and_counts_bad_files(tmp_path, photo):
    ok = tmp_path / "ok.jpg"
    photo.save(ok)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    good, x, failed = load_many([ok, bad, ok], Preprocessing((64, 64), 72))
    assert good == [str(ok), str(ok)] and x.shape == (2, 3, 64, 64)
    assert [p for p, _ in failed] == [str(bad)] and str(bad) in failed[0][1]
    good, x, failed = load_many([bad], Preprocessing((64, 64), 72))
    assert good == [] and x is None and len(failed) == 1


def test_directories_stand_for_their_image_files(tmp_path, photo):
    (tmp_path / "sub").mkdir()
    for name in ("b.JPG", "a.png", "sub/c.webp"):
        photo.save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "folder.png").mkdir()  # a directory named like an image is not a file
    missing = str(tmp_path / "missing.jpg")  # kept: loading it gives its own error
    assert expand_image_paths([tmp_path, missing]) == [str(tmp_path / "a.png"), str(tmp_path / "b.JPG"), missing]
    assert expand_image_paths([str(tmp_path)], recursive=True)[-1] == str(tmp_path / "sub" / "c.webp")
    assert expand_image_paths([tmp_path / "notes.txt"]) == [str(tmp_path / "notes.txt")]


def test_load_batches_equal_one_load_many(tmp_path, photo):
    paths = []
    for i in range(5):
        photo.rotate(30 * i).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    paths.insert(2, bad)
    pre = Preprocessing((32, 32), None)
    batches = list(load_batches(paths, pre, batch_size=4))
    assert [len(good) for good, _, _ in batches] == [3, 2] and [len(b) for _, _, b in batches] == [1, 0]
    good, x, failed = load_many(paths, pre)
    assert sum((g for g, _, _ in batches), []) == good
    assert torch.equal(torch.cat([b for _, b, _ in batches]), x)
    with pytest.raises(CnnlabError, match="batch size"):
        next(load_batches(paths, pre, batch_size=0))


def test_preprocessing_matches_torchvision(tmp_path, photo):
    from torchvision import transforms as T
    big = Image.open(bundled_photo("astronaut")).convert("RGB")
    path = tmp_path / "astronaut.png"
    big.save(path)
    ours = load_images(path, Preprocessing((224, 224), 256))[0]
    theirs = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])(big)
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert torch.allclose(ours, theirs, atol=1e-6)
    # the tensor path (for batches already in memory) agrees closely with the PIL path
    full = load_image(path)[None]
    assert (Preprocessing((224, 224), 256).apply_tensor(full)[0] - theirs).abs().mean() < 0.01


def test_save_image_roundtrip_and_grid(tmp_path, photo):
    x = load_image(photo)
    path = save_image(x, tmp_path / "sub" / "x.png")
    assert torch.equal(load_image(path), x)  # PNG is lossless and x holds exact k/255 values
    batch = torch.stack([x, 1 - x, x * 0.5])
    grid = make_grid(batch, nrow=2, padding=2)
    assert grid.shape == (3, 2 * 80 + 3 * 2, 2 * 120 + 3 * 2)
    assert torch.equal(grid[:, 2:82, 2:122], x) and torch.equal(grid[:, 2:82, 124:244], 1 - x)
    save_image(batch, tmp_path / "grid.png")
    assert Image.open(tmp_path / "grid.png").size == (grid.shape[2], grid.shape[1])
    assert to_uint8(x).shape == (80, 120, 3)
    y = normalize01(torch.tensor([[2.0, 4.0], [6.0, 10.0]]))
    assert float(y.min()) == 0 and float(y.max()) == 1


def test_a_decoder_that_raises_anything_is_that_files_error(tmp_path):
    """Pillow raises TypeError ('Missing dimensions') on this TIFF, not OSError: it is still the file's
    own one-sentence error, so the files beside it load."""
    bad = tmp_path / "scan.tiff"
    bad.write_bytes(corrupt_tiff_bytes())
    with pytest.raises(ImageError, match="scan.tiff.* corrupt"):
        load_image(bad)
    ok = tmp_path / "ok.png"
    Image.fromarray(np.full((40, 30, 3), 200, np.uint8)).save(ok)
    good, x, failed = load_many([ok, bad, ok], Preprocessing((16, 16), 18))
    assert good == [str(ok), str(ok)] and x.shape == (2, 3, 16, 16) and [p for p, _ in failed] == [str(bad)]


def test_a_long_strip_is_refused_in_one_sentence_and_bounded_when_allowed(tmp_path):
    """A 1 x 60,000 PNG (318 bytes) passes the pixel limit; resized by its short side to 256 it would be
    256 x 15.4 M pixels (16.6 GB measured). It is refused by its shape; allowed, only the crop is resampled."""
    strip = np.repeat(((np.arange(60000) + 500) // 1000).astype(np.uint8)[:, None, None], 3, axis=2)[:, :1]
    path = tmp_path / "strip.png"
    Image.fromarray(np.ascontiguousarray(strip)).save(path)
    assert path.stat().st_size < 2000
    code = (f"from cnnlab.images import Preprocessing, load_many, open_image\n"
            f"pre = Preprocessing((224, 224), 256)\n"
            f"good, x, bad = load_many([{str(path)!r}], pre)\n"
            f"print('REFUSED', bad[0][1])\n"
            f"x = pre.apply(open_image({str(path)!r}, max_aspect=float('inf')))\n"
            f"print('SHAPE', tuple(x.shape), 'VALUES', round(float(x.min()) * 255), round(float(x.max()) * 255))\n")
    status, out, peak_mb = child_peak_rss_mb(code)
    assert status == 0, out
    assert "1x60000 pixels: one side is more than 50 times the other" in out and "strip.png" in out
    assert "SHAPE (3, 224, 224) VALUES 30 30" in out  # the middle rows, 29,500 to 30,499, are 30
    assert peak_mb < 1500, f"peak memory {peak_mb:.0f} MB"


def test_fuzzed_files_of_every_format_load_or_give_an_image_error():
    """Thousands of seeded mutations (flipped, replaced, inserted, deleted bytes, truncations) of small
    PNG, JPEG, GIF, BMP, TIFF (raw and LZW) and WebP files: each one is an image tensor in [0, 1] of the
    input size, or an ImageError; nothing else escapes."""
    import io
    import random
    import warnings

    from cnnlab.images import _load_one
    arr = np.random.default_rng(0).integers(0, 255, (24, 20, 3), dtype=np.uint8)
    bases = {}
    for fmt, kw in [("PNG", {}), ("JPEG", {"quality": 80}), ("GIF", {}), ("BMP", {}), ("TIFF", {}),
                    ("TIFF", {"compression": "tiff_lzw"}), ("WEBP", {"quality": 80})]:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format=fmt, **kw)
        bases[f"{fmt} {kw}"] = buf.getvalue()
    rng = random.Random(0)

    def mutate(data: bytes) -> bytes:
        d = bytearray(data)
        for _ in range(rng.choice([1, 1, 2, 4, 8])):
            op, i = rng.random(), rng.randrange(len(d))
            if op < 0.5:
                d[i] = rng.randrange(256)
            elif op < 0.7:
                d[i] ^= 1 << rng.randrange(8)
            elif op < 0.8:
                del d[i:i + rng.randrange(1, 16)]
            elif op < 0.9:
                d[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
            else:
                del d[i:]
            d = d or bytearray(b"x")
        return bytes(d)

    pre = Preprocessing((16, 16), 18)
    outcomes: dict[str, int] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about the corrupt metadata it skips
        for name, data in bases.items():
            for _ in range(600):
                try:
                    x = _load_one(mutate(data), pre)
                except ImageError:
                    outcomes[f"{name} error"] = outcomes.get(f"{name} error", 0) + 1
                    continue
                assert x.shape == (3, 16, 16) and x.dtype == torch.float32, (name, x.shape)
                assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
                outcomes[f"{name} ok"] = outcomes.get(f"{name} ok", 0) + 1
    assert sum(outcomes.values()) == 600 * len(bases)
    assert sum(v for k, v in outcomes.items() if k.endswith("error")) > 1000  # the mutations did damage
