"""The paper as one DAG: ``config/paper.yaml`` names a config per part of the paper and how
it differs there; each part runs as a module of the same workflow (``workflow/rules/paper.smk``).

A paper config has one key, ``paper``::

    paper:
      index: resources/paper/index.yaml     # every table and figure, and where it comes from
      parts:
        segmentation: {config: config/uhcs24.yaml, with: {...}}
        generation: {config: config/uhcs-sd35-large.yaml, with: {...}}
        transfer: {config: config/aachen-heerlen.yaml}
        volumes: {config: config/microgen3d.yaml}

A part's config is its file's, with ``with`` merged over it (:func:`deep_merge`): the paper
settings that only make sense together (the segmenter the generation part applies is the one
the segmentation part trains) and the cluster sizing of its jobs live in the paper config, so
that the per-topic configs stay runnable alone. ``config/paper-smoke.yaml`` names the same
files and differs in sizes and base models only.

Standard library and PyYAML only: the Snakefile imports this at parse time.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

#: The parts of the paper, in the order their outputs are listed. Fixed names: a module of a
#: Snakefile is a literal identifier.
PARTS = ("segmentation", "generation", "transfer", "volumes")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged over it: mappings recursively, anything else
    (scalars, lists, ``null``) replaced. Neither argument is modified.
    """
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def part_configs(paper: Mapping[str, Any], root: str | Path = ".") -> dict[str, dict]:
    """The config of every part of ``paper`` (the ``paper`` block), by part name.

    Parameters
    ----------
    paper : the ``paper`` mapping of a paper config (schema-validated).
    root : the directory the part config paths are relative to (the working directory).

    Raises
    ------
    ValueError
        for a part name that is not one of :data:`PARTS`, a missing config file, or a file
        that is not a YAML mapping; the message names the key and the path.
    """
    parts = {}
    for name, spec in paper["parts"].items():
        if name not in PARTS:
            raise ValueError(f"paper.parts.{name}: unknown part; the parts are {', '.join(PARTS)}")
        path = Path(root, spec["config"])
        if not path.is_file():
            raise ValueError(f"paper.parts.{name}.config: {spec['config']} does not exist")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(loaded, Mapping):
            raise ValueError(f"paper.parts.{name}.config: {spec['config']} is not a mapping")
        parts[name] = deep_merge(loaded, spec.get("with") or {})
    return {name: parts[name] for name in PARTS if name in parts}


def part_results(part: Mapping[str, Any]) -> str | None:
    """The ``results/{name}/`` folder name of a part's config: its 2D data set, else its 3D
    one; None for neither."""
    return (part.get("dataset") or {}).get("name") or (part.get("volumes") or {}).get("name")
