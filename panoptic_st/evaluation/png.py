"""A fast reader for the PNGs the evaluators read: 8- or 16-bit greyscale, grey + alpha, RGB and RGBA.

Label and panoptic PNGs are long runs of equal pixels. PNG's row filters (PNG specification, section 9) turn those
runs into runs of zero bytes, which stock zlib inflates a byte at a time: most of the time OpenCV and PIL spend on a
2048 x 1024 Cityscapes panoptic PNG is zlib's. Here the image data is inflated with zlib-ng, which copies such runs
a block at a time, and the rows are unfiltered by a compiled loop. Chunk CRCs and the zlib checksum are verified.

Anything else (palette, 1/2/4-bit, interlaced, truncated or corrupt files) gives None, and the callers fall back to
OpenCV or PIL, whose values and errors then apply.
"""

from __future__ import annotations

import os
import struct

import numba
import numpy as np
from zlib_ng import zlib_ng

__all__ = ["decode_png", "inflate", "png_image_data", "read_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
"""Samples per pixel of the supported colour types (grey, RGB, grey + alpha, RGBA)."""
_MAX_PIXELS = 1 << 30
"""Larger images are left to OpenCV/PIL and their decompression-bomb limits (OpenCV's default is the same)."""


def read_png(path: str | os.PathLike, buffer: np.ndarray | None = None) -> np.ndarray | None:
    """:func:`decode_png` of a file; None if it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return decode_png(data, buffer)


def decode_png(data: bytes, buffer: np.ndarray | None = None) -> np.ndarray | None:
    """The pixels of a PNG as PIL and OpenCV (in RGB order) give them, or None if the file is not supported.

    Returns HxW (greyscale) or HxWxC (C = 2, 3, 4; samples in file order: grey+alpha, RGB, RGBA), uint8 for 8-bit
    and uint16 for 16-bit files. ``buffer``, an earlier 8-bit result of the same shape, is decoded into.
    """
    image = png_image_data(data)
    if image is None:
        return None
    (width, height, depth, colour, compression, filtering, interlace), idat = image
    if depth not in (8, 16) or colour not in _CHANNELS or (compression, filtering, interlace) != (0, 0, 0):
        return None
    channels, sample_bytes = _CHANNELS[colour], depth // 8
    stride = width * channels * sample_bytes
    raw = inflate(idat, height * (stride + 1))
    if raw is None:
        return None
    shape = (height, width, channels) if channels > 1 else (height, width)
    if sample_bytes == 1 and buffer is not None and buffer.shape == shape and buffer.dtype == np.uint8:
        out = buffer.reshape(height, stride)
    else:
        out = np.empty((height, stride), np.uint8)
    if not _unfilter(np.frombuffer(raw, np.uint8), height, stride, channels * sample_bytes, out):
        return None
    if sample_bytes == 2:
        return out.view(">u2").astype(np.uint16).reshape(shape)
    return out.reshape(shape)


def png_image_data(data: bytes) -> tuple[tuple[int, ...], bytes] | None:
    """(IHDR fields: width, height, bit depth, colour type, compression, filter and interlace method; the
    concatenated IDAT payloads) of a PNG with valid chunk CRCs, no palette, no unknown critical chunk and at most
    2^30 pixels; None otherwise."""
    if data[:8] != _SIGNATURE:
        return None
    pos, header, idat = 8, None, []
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length
        if end + 4 > len(data) or zlib_ng.crc32(data[pos + 4 : end]) != struct.unpack_from(">I", data, end)[0]:
            return None
        if header is None and kind != b"IHDR":
            return None
        if kind == b"IHDR":
            header = data[pos + 8 : end]
        elif kind == b"IDAT":
            idat.append(data[pos + 8 : end])
        elif kind == b"IEND":
            break
        elif kind == b"PLTE" or not kind[0] & 0x20:  # palette, or a critical chunk this reader does not know
            return None
        pos = end + 4
    if header is None or len(header) != 13 or not idat:
        return None
    fields = struct.unpack(">IIBBBBB", header)
    width, height = fields[:2]
    if width == 0 or height == 0 or width * height > _MAX_PIXELS:
        return None
    return fields, b"".join(idat)


def inflate(stream: bytes, size: int) -> bytes | None:
    """The zlib ``stream`` inflated with zlib-ng (checksum verified), if it is complete and holds exactly ``size``
    bytes; None otherwise."""
    try:
        inflater = zlib_ng.decompressobj()
        raw = inflater.decompress(stream, size + 1)
    except zlib_ng.error:
        return None
    return raw if inflater.eof and len(raw) == size else None


def _compile(function):
    """``function`` compiled by numba (the GIL released), cached on disk; where no cache folder is writable (numba
    refuses ``cache=True`` there), compiled anew in each process."""
    try:
        return numba.njit(cache=True, nogil=True, boundscheck=False)(function)
    except RuntimeError:
        return numba.njit(nogil=True, boundscheck=False)(function)


@_compile
def _unfilter(raw: np.ndarray, height: int, stride: int, bpp: int, out: np.ndarray) -> bool:
    """Undo the PNG row filters (None, Sub, Up, Average, Paeth; specification section 9) of ``raw`` into ``out``.

    ``raw`` holds ``height`` rows of one filter-type byte and ``stride`` bytes; ``bpp`` is the bytes per pixel (at
    least one). False for an unknown filter type. Arithmetic is modulo 256, as in the specification.
    """
    zero = np.zeros(stride, np.uint8)
    for y in range(height):
        start = y * (stride + 1) + 1
        kind = raw[start - 1]
        filt = raw[start : start + stride]
        row = out[y]
        prev = out[y - 1] if y > 0 else zero
        if kind == 0:
            row[:] = filt
        elif kind == 1:
            row[:bpp] = filt[:bpp]
            for x in range(bpp, stride):
                row[x] = filt[x] + row[x - bpp]
        elif kind == 2:
            for x in range(stride):
                row[x] = filt[x] + prev[x]
        elif kind == 3:
            for x in range(bpp):
                row[x] = filt[x] + (prev[x] >> 1)
            for x in range(bpp, stride):
                row[x] = filt[x] + np.uint8((np.int32(row[x - bpp]) + np.int32(prev[x])) >> 1)
        elif kind == 4:
            for x in range(bpp):  # no left neighbour: the Paeth predictor of (0, up, 0) is up
                row[x] = filt[x] + prev[x]
            for x in range(bpp, stride):
                up, up_left = prev[x], prev[x - bpp]
                if up == up_left:  # p = left, so left is nearest: the common case in label images
                    row[x] = filt[x] + row[x - bpp]
                    continue
                left = np.int32(row[x - bpp])
                b, c = np.int32(up), np.int32(up_left)
                dist_left, dist_up, dist_up_left = abs(b - c), abs(left - c), abs(left + b - 2 * c)
                if dist_left <= dist_up and dist_left <= dist_up_left:
                    row[x] = filt[x] + row[x - bpp]
                elif dist_up <= dist_up_left:
                    row[x] = filt[x] + up
                else:
                    row[x] = filt[x] + up_left
        else:
            return False
    return True
