"""The registry of data set readers that prepare a folder: one place that maps a
``dataset.source`` name to the function writing that folder as a prepared data set.

A new reader is a function ``prepare(folder, schema_path, out_dir, **options)`` (its options
are the config block ``dataset.{source}`` without ``path`` and ``manifest``, plus
``bit_depth_scaling`` and ``color_to_gray``) and one entry here; the workflow's
``prepare_dataset`` rule, and the config schema's ``dataset.source`` (a test checks they
agree), pick it up. Entries name the function as ``module:function`` so that this module
stays standard library only: the Snakefile reads it when the DAG is built.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

READERS = {
    "folder": "microgen.data.folder:prepare_folder",
    "aachen_heerlen": "microgen.data.aachen_heerlen:prepare_aachen_heerlen",
}


def prepare_dataset(
    source: str, folder: str | Path, schema_path: str | Path, out_dir: str | Path, **options: Any
) -> Any:
    """Run the reader registered for ``source`` (the prepared metadata it wrote)."""
    if source not in READERS:
        raise ValueError(f"dataset.source {source!r} has no folder reader; known: {list(READERS)}")
    module, function = READERS[source].split(":")
    return getattr(import_module(module), function)(folder, schema_path, out_dir, **options)
