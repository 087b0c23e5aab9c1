"""The labelled UHCS-24 subset (DeCost et al. 2019, hdl:11256/964) read through the generic
folder reader with its bundled layout (``layouts/uhcs24.yaml``), and its cross-validation
folds.

The folder holds ``images/uhcsNNNN.png`` (645×484, scale bar cropped), the annotations in
``labels/`` (0 matrix, 1 cementite network, 2 spheroidite regions, 3 Widmanstätten laths)
and ``labels-particles/`` (a later revision in which class 2 marks individual particles),
``metadata.csv`` joined from UHCSDB and ``cv-folds.json`` (six folds of four images).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from microgen.data.folder import FolderLayout, image_files, iter_folder, read_folder_metadata
from microgen.data.folds import layout_mapping, read_folds
from microgen.data.schema import ConditionSchema

LABEL_VERSIONS = ("labels", "labels-particles")
#: Classes of the annotation, ids 0-3 (``resources/schemas/uhcs.yaml`` names them).
CLASSES = 4


def uhcs24_layout(label_version: str = "labels-particles") -> FolderLayout:
    """The bundled UHCS-24 layout with masks from ``label_version``."""
    if label_version not in LABEL_VERSIONS:
        raise ValueError(f"label_version must be one of {LABEL_VERSIONS}, got {label_version!r}")
    return FolderLayout.load("uhcs24", masks=label_version)


def read_uhcs24(folder: str | Path, schema: ConditionSchema | None = None) -> pd.DataFrame:
    """Metadata of the UHCS-24 images in the prepared-data-set columns
    (:func:`microgen.data.folder.read_folder_metadata`). The image without a processing
    record (uhcs1528) keeps NaN conditions."""
    return read_folder_metadata(folder, uhcs24_layout(), schema)


def iter_uhcs24(
    folder: str | Path,
    ids: list[str],
    label_version: str = "labels-particles",
    bit_depth_scaling: str = "none",
    color_to_gray: str = "refuse",
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(id, image, mask)`` for each id, with masks from ``label_version``
    (:func:`microgen.data.folder.iter_folder`)."""
    layout = uhcs24_layout(label_version)
    files = image_files(folder, layout)
    yield from iter_folder(folder, layout, {i: files[i] for i in ids}, CLASSES,
                           bit_depth_scaling, color_to_gray)  # fmt: skip


def read_cv_folds(folder: str | Path) -> dict[int, list[str]]:
    """The six cross-validation folds of DeCost et al., as lists of ``uhcsNNNN`` ids (the
    bundled layout's ``folds``, :func:`microgen.data.folds.read_folds`)."""
    return read_folds(folder, layout_mapping("uhcs24"))
