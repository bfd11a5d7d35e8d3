"""The fast PNG reader gives PIL's pixels for every filter type and supported format, and None for the rest."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from panoptic_st.evaluation import png
from panoptic_st.evaluation.png import decode_png, read_png

FORMATS = {  # colour type -> (channels, PIL mode for 8-bit)
    0: (1, "L"),
    2: (3, "RGB"),
    4: (2, "LA"),
    6: (4, "RGBA"),
}


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The Paeth predictor of whole rows at once (int arrays)."""
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _filter_rows(rows: np.ndarray, kinds: np.ndarray, bpp: int) -> bytes:
    """Encode byte rows with the given PNG filter type per row (a whole-row NumPy encoder, unlike the decoder)."""
    raw = rows.astype(np.int64)
    out = []
    for y, kind in enumerate(kinds):
        cur = raw[y]
        up = raw[y - 1] if y else np.zeros_like(cur)
        left = np.concatenate([np.zeros(bpp, np.int64), cur[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int64), up[:-bpp]])
        predictor = [0, left, up, (left + up) // 2, _paeth(left, up, up_left)][kind]
        out.append(bytes([kind]) + ((cur - predictor) % 256).astype(np.uint8).tobytes())
    return b"".join(out)


def encode_png(pixels: np.ndarray, colour: int, kinds: np.ndarray, interlace: int = 0) -> bytes:
    """A PNG of ``pixels`` (uint8 or uint16, HxW or HxWxC) with the filter type ``kinds[y]`` on row ``y``."""
    height, width = pixels.shape[:2]
    depth = 16 if pixels.dtype == np.uint16 else 8
    data = pixels.astype(">u2") if depth == 16 else pixels
    rows = np.frombuffer(data.tobytes(), np.uint8).reshape(height, -1)
    bpp = FORMATS[colour][0] * depth // 8
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    idat = zlib.compress(_filter_rows(rows, kinds, bpp), 6)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def label_like(rng: np.random.Generator, shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
    """Piecewise-constant pixels (rectangles of random values on a background), as label PNGs are."""
    img = np.zeros(shape, dtype)
    high = np.iinfo(dtype).max + 1
    for _ in range(12):
        y0, x0 = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        img[y0 : y0 + rng.integers(1, 20), x0 : x0 + rng.integers(1, 30)] = rng.integers(
            0, high, shape[2:], dtype
        )
    return img


def pil_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img)


@pytest.mark.parametrize("colour", sorted(FORMATS))
@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("content", ["random", "labels"])
def test_every_filter_type_decodes_to_the_encoded_pixels(colour, depth, content):
    rng = np.random.default_rng(colour * 100 + depth)
    channels = FORMATS[colour][0]
    shape = (23, 37) if channels == 1 else (23, 37, channels)
    dtype = np.uint16 if depth == 16 else np.uint8
    if content == "random":
        pixels = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    else:
        pixels = label_like(rng, shape, dtype)
    kinds = np.arange(shape[0]) % 5  # every filter type, several times, after every other type
    rng.shuffle(kinds)
    decoded = decode_png(encode_png(pixels, colour, kinds))
    assert decoded is not None and decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, pixels)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "I;16"])
def test_files_written_by_pil_read_as_pil_reads_them(mode):
    rng = np.random.default_rng(3)
    channels = {"L": 1, "I;16": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    shape = (64, 96) if channels == 1 else (64, 96, channels)
    pixels = label_like(rng, shape, np.uint16 if mode == "I;16" else np.uint8)
    buf = io.BytesIO()
    img = Image.fromarray(pixels)
    assert img.mode == mode
    img.save(buf, format="PNG")  # PIL picks the filters (adaptively, row by row)
    np.testing.assert_array_equal(decode_png(buf.getvalue()), pil_pixels(buf.getvalue()))


def test_files_written_by_opencv_read_as_opencv_reads_them(tmp_path):
    rgb = label_like(np.random.default_rng(4), (50, 70, 3))
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), rgb[..., ::-1])
    np.testing.assert_array_equal(read_png(path), cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1])


def test_decodes_into_a_given_buffer_of_the_same_shape():
    pixels = label_like(np.random.default_rng(5), (16, 24, 3))
    data = encode_png(pixels, 2, np.full(16, 4))
    buffer = np.zeros((16, 24, 3), np.uint8)
    out = decode_png(data, buffer)
    assert np.shares_memory(out, buffer)
    np.testing.assert_array_equal(buffer, pixels)
    assert not np.shares_memory(decode_png(data, np.zeros((8, 24, 3), np.uint8)), buffer)


def _with_byte(data: bytes, pos: int, value: int) -> bytes:
    return data[:pos] + bytes([value]) + data[pos + 1 :]


def test_unsupported_or_broken_files_give_none():
    pixels = label_like(np.random.default_rng(6), (10, 12, 3))
    good = encode_png(pixels, 2, np.zeros(10, int))
    assert decode_png(good) is not None
    buf = io.BytesIO()
    Image.fromarray(pixels[..., 0]).convert("P").save(buf, format="PNG")
    assert decode_png(buf.getvalue()) is None  # palette
    buf = io.BytesIO()
    Image.fromarray(pixels[..., 0] > 0).save(buf, format="PNG")
    assert decode_png(buf.getvalue()) is None  # 1-bit
    assert decode_png(encode_png(pixels, 2, np.zeros(10, int), interlace=1)) is None
    assert decode_png(_with_byte(good, 40, good[40] ^ 1)) is None  # a flipped bit: the chunk CRC fails
    assert decode_png(good[:-20]) is None  # truncated
    assert decode_png(b"GIF89a" + good[6:]) is None
    bad_filter = zlib.compress(b"".join(bytes([7]) + bytes(36) for _ in range(10)))
    header = struct.pack(">IIBBBBB", 12, 10, 8, 2, 0, 0, 0)
    forged = (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", bad_filter) + _chunk(b"IEND", b"")
    )
    assert decode_png(forged) is None  # filter type 7 does not exist
    short = zlib.compress(bytes(37 * 9))
    forged = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", short) + _chunk(b"IEND", b"")
    assert decode_png(forged) is None  # one row missing
    assert read_png("/nonexistent/file.png") is None


def test_compiles_without_a_disk_cache_where_numba_cannot_cache(monkeypatch):
    real_njit = png.numba.njit

    def njit(*args, cache=False, **kwargs):
        if cache:
            raise RuntimeError("cannot cache function: no locator available")
        return real_njit(*args, **kwargs)

    monkeypatch.setattr(png.numba, "njit", njit)
    add_one = png._compile(lambda x: x + 1)
    assert add_one(41) == 42


def test_images_above_the_pixel_limit_are_left_to_opencv_and_pil(monkeypatch):
    pixels = label_like(np.random.default_rng(7), (10, 12))
    data = encode_png(pixels, 0, np.zeros(10, int))
    monkeypatch.setattr(png, "_MAX_PIXELS", 120)
    np.testing.assert_array_equal(decode_png(data), pixels)
    monkeypatch.setattr(png, "_MAX_PIXELS", 119)
    assert decode_png(data) is None
