"""What an upload must pass before it is decoded: a byte cap, a pixel cap read from the header, and
a complete file.

A decompression bomb is a small file whose header promises a huge picture (a 400 KB PNG can inflate
to 400 MB of pixels). The header is read with Pillow, which parses only the header when it opens an
image, so the pixel count is known and checked before any pixel is decoded. Truncated PNG and JPEG
files are recognised by their missing end marker, so the message says "truncated" rather than just
"cannot decode". Decoding itself is `kplab.faces.training.images.decode_image`, the code `kplab predict` uses,
so an upload and the same file on disk give the same pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

DEFAULT_MAX_BYTES = 10_000_000  # 10 MB per request body
DEFAULT_MAX_PIXELS = 25_000_000  # 25 megapixels: every phone camera's photo, not a bomb

# Pillow's format names for what both Pillow (header) and OpenCV (pixels) read.
ACCEPTED_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "BMP": "BMP", "TIFF": "TIFF", "WEBP": "WebP",
                    "PPM": "PPM/PGM", "JPEG2000": "JPEG 2000"}
PNG_IEND = b"IEND\xaeB`\x82"  # the IEND chunk type and its fixed CRC: the last chunk of every PNG
JPEG_SOS, JPEG_EOI = b"\xff\xda", b"\xff\xd9"  # start of scan; end of image


class UploadError(Exception):
    """An upload the service refuses: `status` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self):
        if self.max_bytes < 1 or self.max_pixels < 1:
            raise ValueError("max_bytes and max_pixels must be at least 1")


def too_large(size: int, limits: Limits) -> UploadError:
    return UploadError(413, f"upload too large: {size:,} bytes (the limit is {limits.max_bytes:,} bytes)")


def check_image_bytes(data: bytes, limits: Limits) -> tuple[str, int, int]:
    """(format, width, height) of an encoded image, from its header only; raises UploadError with 413
    for too many bytes or pixels and 422 for anything that is not a complete image we read."""
    from PIL import Image

    if len(data) > limits.max_bytes:
        raise too_large(len(data), limits)
    if not data:
        raise UploadError(422, "empty upload (0 bytes): send the image as the request body or a multipart file")
    try:
        with Image.open(io.BytesIO(data)) as header:  # parses the header; decodes no pixels
            fmt, (width, height) = header.format, header.size
    except Image.DecompressionBombError:  # Pillow's own guard (about 179 M pixels), far above any sane cap
        raise UploadError(413, f"image too large: its header promises over {2 * Image.MAX_IMAGE_PIXELS:,} pixels "
                               f"(the limit is {limits.max_pixels:,}); it was not decoded") from None
    except Exception:  # noqa: BLE001 - Pillow raises many types on hostile bytes; all mean "not an image"
        raise UploadError(422, f"not an image: the data starts with {data[:16]!r}; send one of "
                               f"{', '.join(ACCEPTED_FORMATS.values())}") from None
    if fmt not in ACCEPTED_FORMATS:
        raise UploadError(422, f"unsupported image format {fmt}; send one of {', '.join(ACCEPTED_FORMATS.values())}")
    if width * height > limits.max_pixels:
        raise UploadError(413, f"image too large: {width}x{height} = {width * height:,} pixels "
                               f"(the limit is {limits.max_pixels:,}); it was not decoded")
    if fmt == "PNG" and data.rfind(PNG_IEND) < 0:
        raise UploadError(422, f"truncated PNG: the {len(data):,} bytes end before the IEND chunk")
    if fmt == "JPEG":
        scan = data.find(JPEG_SOS)
        # Inside the entropy-coded scan 0xFF is always followed by 0x00 or a restart marker, so an
        # end-of-image marker after the first scan marks a complete file.
        if scan < 0 or data.find(JPEG_EOI, scan) < 0:
            raise UploadError(422, f"truncated JPEG: the {len(data):,} bytes end before the end-of-image marker")
    return ACCEPTED_FORMATS[fmt], width, height


def decode_upload(data: bytes, limits: Limits) -> np.ndarray:
    """Check an upload (check_image_bytes), then decode it to uint8 BGR (H, W, 3) as `kplab predict`
    decodes files; an image that passes the header checks but does not decode is a 422."""
    from kplab.errors import DataError
    from kplab.faces.training.images import decode_image

    fmt, width, height = check_image_bytes(data, limits)
    try:
        image = decode_image(np.frombuffer(data, np.uint8), "upload")
    except DataError as e:
        raise UploadError(422, f"corrupt {fmt} data ({width}x{height} in its header): {e}") from None
    if image.shape[:2] != (height, width):  # the header promised one size and the pixels are another
        raise UploadError(422, f"corrupt {fmt} data: header says {width}x{height}, "
                               f"pixels are {image.shape[1]}x{image.shape[0]}")
    return image
