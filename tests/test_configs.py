"""Every shipped config validates against the schema, and the schema rejects what it should."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO
from snakemake.utils import validate

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
PAPER_SCHEMA = REPO / "workflow" / "schemas" / "paper.schema.yaml"
PAPERS = sorted((REPO / "config").glob("paper*.yaml"))
CONFIGS = [p for p in sorted((REPO / "config").glob("*.yaml")) if p not in PAPERS] + [
    REPO / "tests" / "config" / name for name in ("small.yaml", "aachen-heerlen-small.yaml")
]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    validate(yaml.safe_load(path.read_text()), str(SCHEMA))


@pytest.mark.parametrize("path", PAPERS, ids=lambda p: p.name)
def test_paper_configs_and_each_of_their_parts_validate(path):
    from microgen.paper import part_configs

    paper = yaml.safe_load(path.read_text())
    validate(paper, str(PAPER_SCHEMA))
    for part in part_configs(paper["paper"], REPO).values():
        validate(part, str(SCHEMA))


def test_schema_fills_compute_defaults():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.pop("compute", None)
    validate(config, str(SCHEMA))
    assert config["compute"]["train"]["gpus"] == 1
    assert config["compute"]["data"]["gpus"] == 0


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda c: c["segment"].update(losess=["dice"]), "losess"),
        (lambda c: c["generate"]["sampling"].update(steps="many"), "steps"),
        (lambda c: c["dataset"].update(source="ftp"), "source"),
    ],
)
def test_bad_configs_name_the_key(change, key):
    config = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    change(config)
    with pytest.raises(Exception, match=key):
        validate(config, str(SCHEMA))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_report_description_renders_for_every_config(path):
    """The report's description (workflow/report/workflow.rst) reads only keys the config
    has: a volumes-only config must not raise a template error when its report is built."""
    from types import SimpleNamespace

    import jinja2

    template = (REPO / "workflow" / "report" / "workflow.rst").read_text()
    config = yaml.safe_load(path.read_text())
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    text = env.from_string(template).render(snakemake=SimpleNamespace(config=config))
    for part in ("dataset", "volumes"):
        if part in config:
            assert config[part]["name"] in text


def _property_keys(node: dict) -> set[str]:
    """Every property name below ``node`` of a JSON schema, nested ones included (those of
    list items too)."""
    keys = set()
    for name, sub in (node.get("properties") or {}).items():
        keys |= {name} | _property_keys(sub)
    for sub in node.get("allOf", []):
        keys |= _property_keys(sub.get("then", {}))
    if isinstance(node.get("items"), dict):
        keys |= _property_keys(node["items"])
    return keys


def _undocumented(keys: set[str], section: str) -> list[str]:
    """The keys ``section`` names neither alone (`path`) nor under a parent (`values.time`)."""
    return sorted(k for k in keys if f"`{k}`" not in section and f".{k}`" not in section)


def test_every_dataset_and_layout_key_is_documented():
    """config/README.md names every key of ``dataset`` (each reader's), of a folder layout
    and of a column spec, so a user can write a config for their own folder from it."""
    from dataclasses import fields

    from microgen.data.folder import SPEC_KEYS, FolderLayout

    readme = (REPO / "config" / "README.md").read_text()
    section = readme[readme.index("## `dataset`") : readme.index("## `split`")]
    schema = yaml.safe_load(SCHEMA.read_text())["properties"]["dataset"]
    keys = _property_keys(schema) | {f.name for f in fields(FolderLayout)} | set(SPEC_KEYS)
    undocumented = _undocumented(keys, section)
    assert not undocumented, f"config/README.md does not document {undocumented}"


def test_every_condition_schema_key_is_documented():
    """config/README.md names every key a condition schema may have (variables, prompts,
    the class list and its entries), so a user can write the schema of their data set."""
    from microgen.data.schema import SCHEMA_OF_SCHEMAS

    readme = (REPO / "config" / "README.md").read_text()
    section = readme[readme.index("## Condition schema") : readme.index("## `split`")]
    keys = _property_keys(yaml.safe_load(SCHEMA_OF_SCHEMAS.read_text()))
    assert {"classes", "color", "categories", "full_text"} <= keys  # the walk reaches items
    undocumented = _undocumented(keys, section)
    assert not undocumented, f"config/README.md does not document {undocumented}"


def test_every_registered_reader_is_a_source_of_the_config_schema():
    from microgen.data.readers import READERS

    schema = yaml.safe_load(SCHEMA.read_text())["properties"]["dataset"]
    sources = set(schema["properties"]["source"]["enum"])
    assert set(READERS) <= sources
    # Each registered reader has its config block, required when it is the source.
    required = {
        sub["if"]["properties"]["source"]["const"]: sub["then"]["required"]
        for sub in schema["allOf"]
    }
    for source in READERS:
        assert source in schema["properties"] and required[source] == [source]
