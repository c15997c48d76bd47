"""Reading the pictures people have: any size, grey or colour, 8 or 16 bit, with or without alpha,
and sometimes PNG data under a `.jpg` name.

Everything is decoded from the file's bytes (OpenCV sniffs the format from the content, not the name)
and normalised to one form: uint8 BGR (H, W, 3), OpenCV's order, which the annotation and video code
write back unchanged. Problems raise `DataError` with the file name and the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kplab.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm",
                              ".pbm", ".jp2"})

# Transparent pixels are composited over white, as most viewers show a transparent page.
ALPHA_BACKGROUND = 255.0


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file into uint8 BGR (H, W, 3); raises DataError naming the file on failure."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    return decode_image(data, str(path))


def decode_image(data: np.ndarray | bytes, name: str) -> np.ndarray:
    """Decode an encoded image (a file's bytes) into uint8 BGR (H, W, 3); DataError messages start
    with `name`. Shared by files (`read_image`) and uploads (kplab.serve)."""
    import cv2

    data = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if data.size == 0:
        raise DataError(f"{name}: empty file (0 bytes), not an image")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        head = bytes(data[:16]).decode("ascii", "replace")
        raise DataError(f"{name}: not an image OpenCV can decode (starts with {head!r})")
    try:
        return to_bgr8(image)
    except ValueError as e:
        raise DataError(f"{name}: {e}") from None


def to_bgr8(image: np.ndarray, order: str = "bgr") -> np.ndarray:
    """Any grey / colour / alpha image array (H, W[, C]) of uint8, uint16 or float in [0, 1] -> uint8
    BGR (H, W, 3). `order` names the channel order of 3- and 4-channel input ("bgr" as OpenCV decodes,
    "rgb" as PIL, matplotlib and most notebooks hold pictures)."""
    image = np.asarray(image)
    if order not in ("bgr", "rgb"):
        raise ValueError(f"order must be 'bgr' or 'rgb', got {order!r}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"unsupported image shape {image.shape}: need (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image has no pixels (shape {image.shape})")
    scaled = _unit_range(image)  # float32 in [0, 1]
    if scaled.ndim == 2:
        scaled = np.repeat(scaled[..., None], 3, axis=2)
    elif scaled.shape[2] == 4:
        alpha = scaled[..., 3:]
        scaled = scaled[..., :3] * alpha + (ALPHA_BACKGROUND / 255.0) * (1.0 - alpha)
    if order == "rgb":
        scaled = scaled[..., ::-1]
    return np.ascontiguousarray(np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8))


def _unit_range(image: np.ndarray) -> np.ndarray:
    """Pixel values as float32 in [0, 1]: uint8 / 255, uint16 / 65535, floats as they are (they must
    lie in [0, 1]), other integers / 255 (they must lie in 0..255)."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise ValueError("image has NaN or infinite pixel values")
        if image.min() < 0.0 or image.max() > 1.0:
            raise ValueError(f"float pixels must lie in [0, 1], got [{image.min():g}, {image.max():g}] "
                             "(divide by 255, or pass uint8)")
        return image.astype(np.float32)
    if image.dtype == np.bool_:
        return image.astype(np.float32)
    if np.issubdtype(image.dtype, np.integer):  # e.g. int64 from np.array(list): taken as 8-bit
        if image.min() < 0 or image.max() > 255:
            raise ValueError(f"{image.dtype} pixels must lie in 0..255, got {image.min()}..{image.max()} "
                             "(pass uint16 for 16-bit pictures)")
        return image.astype(np.float32) / 255.0
    raise ValueError(f"unsupported pixel type {image.dtype} (use uint8, uint16 or float in [0, 1])")


def to_grey(image_bgr: np.ndarray) -> np.ndarray:
    """uint8 BGR (H, W, 3) -> uint8 grey (H, W) with OpenCV's luma weights (as the training crops)."""
    import cv2

    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
