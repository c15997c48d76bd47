"""Upload checks in-process: caps read from headers before decoding, truncation, non-images."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from kplab.faces.training.images import decode_image
from kplab.serve.limits import Limits, UploadError, check_image_bytes, decode_upload


def png_bomb(width: int, height: int) -> bytes:
    """A real PNG of width x height grey zeros: a few hundred KB that inflate to width * height bytes.
    Built chunk by chunk so the test itself never holds the inflated pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + one grey byte per pixel
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) is rewritten to claim width x height."""
    data = bytearray(cv2.imencode(".jpg", np.full((64, 64, 3), 120, np.uint8))[1].tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def encoded(fmt: str, shape=(120, 100, 3)) -> bytes:
    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    return cv2.imencode(fmt, image)[1].tobytes()


def test_a_decompression_bomb_is_refused_from_its_header():
    bomb = png_bomb(6000, 6000)  # 36 M pixels in about 35 KB
    assert len(bomb) < 100_000
    with pytest.raises(UploadError) as e:
        check_image_bytes(bomb, Limits(max_pixels=25_000_000))
    assert e.value.status == 413
    assert "6000x6000" in str(e.value) and "not decoded" in str(e.value)
    # The same bytes under a cap they fit decode to exactly the promised pixels: it is a real image.
    assert decode_upload(bomb, Limits(max_pixels=40_000_000)).shape == (6000, 6000, 3)


@pytest.mark.parametrize("width, height, words", [
    (9000, 8000, "9000x8000 = 72,000,000 pixels"),
    (60000, 50000, "over 178,956,970 pixels"),  # past Pillow's own guard, which then speaks first
])
def test_a_jpeg_header_claiming_giant_dimensions_is_refused(width, height, words):
    with pytest.raises(UploadError) as e:
        check_image_bytes(jpeg_claiming(width, height), Limits())
    assert e.value.status == 413 and words in str(e.value) and "not decoded" in str(e.value)


def test_byte_cap():
    data = encoded(".png")
    with pytest.raises(UploadError) as e:
        check_image_bytes(data, Limits(max_bytes=len(data) - 1))
    assert e.value.status == 413 and f"{len(data):,} bytes" in str(e.value)
    assert check_image_bytes(data, Limits(max_bytes=len(data))) == ("PNG", 100, 120)


@pytest.mark.parametrize("fmt", [".png", ".jpg"])
def test_truncated_files_are_named_as_truncated(fmt):
    data = encoded(fmt)
    for cut in (len(data) // 2, len(data) - 5):
        with pytest.raises(UploadError) as e:
            decode_upload(data[:cut], Limits())
        assert e.value.status == 422
        assert f"truncated {'PNG' if fmt == '.png' else 'JPEG'}" in str(e.value)


@pytest.mark.parametrize("data, words", [
    (b"", "empty upload"),
    (b"%PDF-1.7 not a picture at all", "not an image"),
    (b"GIF89a" + b"\x00" * 40, "not an image"),  # Pillow cannot even read this header
])
def test_non_images_are_422_naming_why(data, words):
    with pytest.raises(UploadError) as e:
        decode_upload(data, Limits())
    assert e.value.status == 422 and words in str(e.value)


def test_a_format_opencv_does_not_read_is_refused_by_name():
    gif = io.BytesIO()
    Image.new("RGB", (64, 64)).save(gif, "GIF")
    with pytest.raises(UploadError) as e:
        decode_upload(gif.getvalue(), Limits())
    assert e.value.status == 422 and "unsupported image format GIF" in str(e.value)


def test_corrupt_pixels_behind_a_good_header_are_422():
    data = bytearray(encoded(".png"))
    idat = data.find(b"IDAT")
    data[idat + 8:idat + 40] = b"\xff" * 32  # garbage in the compressed stream; IEND still there
    with pytest.raises(UploadError) as e:
        decode_upload(bytes(data), Limits())
    assert e.value.status == 422 and "corrupt PNG" in str(e.value)


@pytest.mark.parametrize("fmt", [".png", ".jpg", ".bmp", ".tiff", ".webp", ".ppm"])
def test_accepted_formats_decode_exactly_as_files_do(fmt):
    data = encoded(fmt)
    assert np.array_equal(decode_upload(data, Limits()), decode_image(data, "file"))
