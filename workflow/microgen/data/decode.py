"""Decoding of source micrographs and masks into the 8-bit gray arrays of a prepared data set.

Every reader of source images (UHCS-24 folder, UHCSDB, Aachen-Heerlen) decodes through
:func:`read_micrograph` and :func:`read_mask`, so what cannot be represented as 8-bit gray
is refused in one place instead of being converted silently:

* a bit depth other than 8 (16-bit, 12-bit in 16, 1-bit, float), unless
  ``dataset.bit_depth_scaling`` says how to scale it (``linear`` or ``stretch``);
* a colour image whose channels differ (false colour, an overlay), unless
  ``dataset.color_to_gray: luminance`` asks for its luma; an RGB image whose three channels
  are equal is gray and is accepted as such;
* transparency (there is no background to composite onto).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from microgen.data.checks import DataError

#: ``dataset.bit_depth_scaling``: ``none`` refuses other depths; ``linear`` maps the nominal
#: range 0…2^bits−1 onto 0…255; ``stretch`` maps the image's own min…max onto 0…255.
BIT_DEPTH_SCALINGS = ("none", "linear", "stretch")
#: ``dataset.color_to_gray``: ``refuse`` colour images, or convert them to ``luminance``.
COLOR_TO_GRAY = ("refuse", "luminance")

_RAW_BITS = re.compile(r";(\d+)")
_MODE_BITS = {"1": 1, "I": 32, "F": 32}


class ImageDataError(DataError):
    """An image that cannot be represented as an 8-bit gray micrograph or class mask."""


def read_micrograph(
    source: str | Path | BinaryIO,
    bit_depth_scaling: str = "none",
    color_to_gray: str = "refuse",
    name: str | None = None,
) -> np.ndarray:
    """Decode a micrograph as a 2-D uint8 gray array, refusing what would need a guess.

    Parameters
    ----------
    source : image file (path or open binary file).
    bit_depth_scaling : one of :data:`BIT_DEPTH_SCALINGS`, for images not stored with 8 bits
        per sample. Colour images of 16 bits have been reduced to their high byte by the
        decoder already, which ``linear`` accepts.
    color_to_gray : one of :data:`COLOR_TO_GRAY`, for colour images whose channels differ.
    name : how messages name the image (default: the path).

    Raises
    ------
    ImageDataError
        Naming the image, what it is and the config key that would accept it.
    """
    _check_option("dataset.bit_depth_scaling", bit_depth_scaling, BIT_DEPTH_SCALINGS)
    _check_option("dataset.color_to_gray", color_to_gray, COLOR_TO_GRAY)
    name = name or str(source)
    with _open(source, name) as im:
        bits = _stored_bits(im)
        im.load()
        im = _without_alpha(im, name)
        if im.mode not in ("1", "L", "RGB") and not im.mode.startswith(("I", "F")):
            im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV: judged by their RGB colours
        if im.mode == "RGB":
            return _gray_from_rgb(im, bits, bit_depth_scaling, color_to_gray, name)
        return _to_8bit(im, bits, bit_depth_scaling, name)


def read_mask(source: str | Path | BinaryIO, name: str | None = None) -> np.ndarray:
    """Decode a class mask as a 2-D uint8 array of class ids.

    Palette images give their indices (how label tools store class maps); a 16-bit mask is
    accepted when every id fits in 8 bits. Colours (channels that differ) are refused: class
    ids are never scaled or converted, since a new value would be a new class.
    """
    name = name or str(source)
    with _open(source, name) as im:
        im.load()
        if im.mode == "RGB":
            return _equal_channels(np.asarray(im), name, "a class mask of one channel")
        if im.mode not in ("1", "L", "P") and not im.mode.startswith("I"):
            raise ImageDataError(
                f"{name}: a class mask must be one channel of class ids, got mode {im.mode}"
            )
        ids = np.asarray(im)
    if ids.min(initial=0) < 0 or ids.max(initial=0) > 255:
        raise ImageDataError(
            f"{name}: class ids {ids.min()}…{ids.max()} do not fit in 8 bits (0…255)"
        )
    return ids.astype(np.uint8)


def _check_option(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {list(allowed)}, got {value!r}")


def _open(source: str | Path | BinaryIO, name: str) -> Image.Image:
    try:
        return Image.open(source)
    except (OSError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
        raise ImageDataError(f"cannot read image {name}: {err}") from err


def _stored_bits(im: Image.Image) -> int:
    """Bits per sample as stored in the file, before Pillow unpacks them to its mode.

    Pillow silently widens 1-, 2- and 4-bit gray to 8 bits and narrows 16-bit colour to 8;
    the raw mode of the file's first tile (or the TIFF BitsPerSample tag) still tells.
    """
    if im.mode in ("P", "PA"):
        return 8  # palette entries are 8-bit colours, whatever the index width
    tags = getattr(im, "tag_v2", None)
    if tags is not None and 258 in tags:
        value = tags[258]
        return int(max(value) if isinstance(value, tuple) else value)
    raw = im.mode
    if im.tile:
        args = im.tile[0].args
        raw = args if isinstance(args, str) else (args[0] if args else im.mode)
    match = _RAW_BITS.search(raw)
    if match:
        return int(match.group(1))
    return _MODE_BITS.get(raw, _MODE_BITS.get(im.mode, 8))


def _without_alpha(im: Image.Image, name: str) -> Image.Image:
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
    if "A" not in im.getbands():
        return im
    alpha = np.asarray(im.getchannel("A"))
    if alpha.min() < 255:
        raise ImageDataError(
            f"{name}: the image has transparency (alpha {alpha.min()}…{alpha.max()}); "
            "a micrograph has no background to show through, save it without alpha"
        )
    return im.convert("L" if im.mode == "LA" else "RGB")


def _gray_from_rgb(
    im: Image.Image, bits: int, scaling: str, color_to_gray: str, name: str
) -> np.ndarray:
    if bits != 8 and scaling == "none":
        raise _depth_error(name, bits, im.mode)
    rgb = np.asarray(im)
    if color_to_gray == "luminance":
        gray = np.asarray(im.convert("L"))  # ITU-R 601-2 luma
    else:
        gray = _equal_channels(rgb, name, "a gray micrograph")
    # Only the high byte of deeper colour samples is left: ``linear`` keeps it as it is.
    return _stretch(gray) if bits != 8 and scaling == "stretch" else gray


def _equal_channels(rgb: np.ndarray, name: str, wanted: str) -> np.ndarray:
    """An RGB array whose three channels are equal, as one channel; otherwise refused."""
    differ = (rgb[..., 0] != rgb[..., 1]) | (rgb[..., 0] != rgb[..., 2])
    if differ.any():
        raise ImageDataError(
            f"{name}: colour image (RGB channels differ in {differ.mean():.1%} of pixels), "
            f"expected {wanted}; set dataset.color_to_gray: luminance to convert micrographs "
            "to their luma"
        )
    return np.ascontiguousarray(rgb[..., 0])


def _to_8bit(im: Image.Image, bits: int, scaling: str, name: str) -> np.ndarray:
    values = np.asarray(im)
    if bits == 8 and im.mode == "L":
        return values.astype(np.uint8)
    if scaling == "none":
        raise _depth_error(name, bits, im.mode)
    if scaling == "stretch":
        return _stretch(values)
    if im.mode == "F":
        raise ImageDataError(
            f"{name}: a floating-point image has no nominal range for "
            "dataset.bit_depth_scaling: linear; use stretch"
        )
    # Pillow has already widened 2- and 4-bit gray to 0…255; only 1-bit and integer modes
    # still hold their stored range.
    top = 1 if im.mode == "1" else (255 if im.mode == "L" else 2**bits - 1)
    values = values.astype(np.float64)
    if values.min() < 0 or values.max() > top:
        raise ImageDataError(
            f"{name}: values {values.min():g}…{values.max():g} exceed the {bits}-bit range "
            f"0…{top}; use dataset.bit_depth_scaling: stretch"
        )
    return np.round(values * (255.0 / top)).astype(np.uint8)


def _stretch(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    low, high = values.min(), values.max()
    if high == low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _depth_error(name: str, bits: int, mode: str) -> ImageDataError:
    return ImageDataError(
        f"{name}: {bits}-bit image (mode {mode}); a prepared data set is 8-bit gray. Set "
        "dataset.bit_depth_scaling to linear (0…2^bits−1 onto 0…255) or stretch (the "
        "image's min…max onto 0…255) to convert it"
    )
