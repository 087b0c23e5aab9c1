"""Layout files and cross-validation folds of a data set folder, standard library and YAML
only: the Snakefile reads the fold numbers when it builds the DAG (how many jobs there are).

A layout (:class:`microgen.data.folder.FolderLayout`) may name its folds:

``folds: {file: cv-folds.json, name: "micrograph{micrograph_id}"}``
    a JSON object of fold number → image names; ``name`` (default ``"{id}"``, the image ids
    as they are) is a template over the metadata row (raw text, plus ``id``) that gives the
    name the file uses for that image;
``folds: {column: fold}``
    a metadata column holding each image's fold number.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

#: Layouts of known data sets, by name (``uhcs24``).
BUNDLED = Path(__file__).with_name("layouts")


def bundled_layouts() -> list[str]:
    """Names of the layouts in :data:`BUNDLED`."""
    return sorted(p.stem for p in BUNDLED.glob("*.yaml"))


def layout_mapping(layout: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A layout as a mapping: a bundled layout by name, a YAML file, or the mapping itself."""
    if not isinstance(layout, (str, Path)):
        return dict(layout)
    path = BUNDLED / f"{layout}.yaml" if str(layout) in bundled_layouts() else Path(layout)
    if not path.is_file():
        raise FileNotFoundError(
            f"folder layout {path} does not exist (bundled: {bundled_layouts()})"
        )
    return yaml.safe_load(path.read_text())


def folds_source(folder: str | Path, layout: Mapping[str, Any]) -> Path:
    """The file the folds are read from: the folds JSON, or the metadata table."""
    spec = _spec(layout)
    return Path(folder) / spec.get("file", layout.get("metadata", "metadata.csv"))


def read_folds(folder: str | Path, layout: Mapping[str, Any]) -> dict[int, list[str]]:
    """Fold number → image ids (file-name stems), in the order the source lists them."""
    spec, path = _spec(layout), folds_source(folder, layout)
    rows = _metadata_rows(folder, layout)
    ids = [Path(row[layout["file_column"]]).stem for row in rows]
    if "column" in spec:
        folds: dict[int, list[str]] = {}
        for image_id, row in zip(ids, rows, strict=True):
            value = row[spec["column"]].strip()
            if value:
                folds.setdefault(_fold_number(value, path), []).append(image_id)
        return dict(sorted(folds.items()))
    template = spec.get("name", "{id}")
    by_name = {template.format(**row, id=i): i for i, row in zip(ids, rows, strict=True)}
    raw = json.loads(path.read_text())
    unknown = sorted({n for names in raw.values() for n in names} - set(by_name))
    if unknown:
        raise ValueError(
            f"{path}: {len(unknown)} name(s) match no image of the metadata (named by "
            f"{template!r}), e.g. {unknown[:3]}"
        )
    folds = {_fold_number(k, path): [by_name[n] for n in v] for k, v in raw.items()}
    return dict(sorted(folds.items()))


def fold_numbers(folder: str | Path, layout: Mapping[str, Any]) -> list[int]:
    """The fold numbers, sorted."""
    return sorted(read_folds(folder, layout))


def _spec(layout: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = layout.get("folds")
    if not spec:
        raise ValueError("the folder layout names no cross-validation folds (key folds)")
    if ("file" in spec) == ("column" in spec):
        raise ValueError(f"folds: give either file or column, got {dict(spec)}")
    return spec


def _metadata_rows(folder: str | Path, layout: Mapping[str, Any]) -> list[dict[str, str]]:
    path = Path(folder) / layout.get("metadata", "metadata.csv")
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _fold_number(value: str, source: Path) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{source}: fold {value!r} is not an integer") from None
