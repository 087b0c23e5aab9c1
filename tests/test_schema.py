"""Condition schema and the three prompt modes of the paper."""

from __future__ import annotations

import pytest
import yaml

from microgen.data.schema import load_schema

CONDITION = {
    "temperature": 800,
    "time": 480,
    "magnification": 4910,
    "cooling": "Q",
    "microconstituent": "network",
}


def test_full_text_prompt_reads_like_the_paper(schema):
    text = schema.prompt(CONDITION, "text_only")
    assert text == (
        "spheroidite with cementite network, 800 °C, 480 minutes, 4910× magnification, quenched"
    )


def test_placeholders_by_prompt_mode(schema):
    full = schema.prompt(CONDITION, "full_text")
    params = schema.prompt(CONDITION, "parameter_only")
    text = schema.prompt(CONDITION, "text_only")
    for token in ("<temp>", "<time>", "<mag>", "<cool>", "<micro>"):
        assert full.count(token) == 1 and params.count(token) == 1 and token not in text
    assert "800" in full and "800" not in params


def test_label_in_paper_notation(schema):
    assert schema.label({**CONDITION, "time": 180, "microconstituent": "spheroidite"}) == (
        "800C-180M-4910x-Q-S"
    )


def test_bad_conditions_name_the_variable(schema):
    with pytest.raises(ValueError, match="cooling"):
        schema.prompt({**CONDITION, "cooling": "oil"})
    with pytest.raises(ValueError, match="time"):
        schema.prompt({k: v for k, v in CONDITION.items() if k != "time"})
    with pytest.raises(ValueError, match="magnification"):
        schema.prompt({**CONDITION, "magnification": 0})
    with pytest.raises(ValueError, match="unknown prompt mode"):
        schema.prompt(CONDITION, "poem")


def test_a_new_dataset_needs_only_a_schema_file(tmp_path):
    # The paper's Aachen-Heerlen transfer: other variables, same code.
    spec = {
        "name": "aachen-heerlen",
        "continuous": [
            {
                "name": "temperature",
                "label": "T",
                "unit": "°C",
                "placeholder": "<temp>",
                "format": "{value:g} °C",
            },
            {
                "name": "distance",
                "label": "d",
                "unit": "mm",
                "placeholder": "<dist>",
                "format": "{value:g} mm",
            },
        ],
        "categorical": [
            {"name": "orientation", "placeholder": "<ori>", "categories": ["V", "P"]},
        ],
        "prompts": {
            "full_text": "bainite, {temperature} {<temperature>}, {distance} {<distance>}, "
            "{orientation} {<orientation>}",
            "text_only": "bainite, {temperature}, {distance}, {orientation}",
            "parameter_only": "{<temperature>} {<distance>} {<orientation>}",
        },
    }
    path = tmp_path / "ah.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    ah = load_schema(path)
    condition = {"temperature": 400, "distance": 9, "orientation": "V"}
    assert ah.prompt(condition) == "bainite, 400 °C <temp>, 9 mm <dist>, V <ori>"
    assert ah.placeholders == ("<temp>", "<dist>", "<ori>")
    assert ah.label(condition) == "400-9-V"


def test_schema_without_a_prompt_mode_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "x", "continuous": [], "categorical": [], "prompts": {"full_text": "a"}}
        )
    )
    with pytest.raises(ValueError, match="text_only"):
        load_schema(path)


def _broken(tmp_path, change):
    """The UHCS schema with one change, written to a file."""
    from conftest import SCHEMA

    raw = yaml.safe_load(SCHEMA.read_text())
    change(raw)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


@pytest.mark.parametrize(
    "change, key",
    [
        (
            lambda r: r["continuous"][0].update(plaeholder=r["continuous"][0].pop("placeholder")),
            "continuous.0",
        ),  # fmt: skip
        (lambda r: r["categorical"][0].update(categories=[]), "categorical.0.categories"),
        (lambda r: r["categorical"][1].pop("categories"), "categorical.1"),
        (lambda r: r["prompts"].pop("text_only"), "prompts"),
        (lambda r: r.update(promts=r.pop("prompts")), "(top level)"),
        (lambda r: r["prompts"].update(full_text="{micro} at {temperature}"), "prompts.full_text"),
        (lambda r: r["prompts"].update(parameter_only="{<tmp>}"), "prompts.parameter_only"),
        (lambda r: r.update(condition_label="{temp:g}C"), "condition_label"),
        (lambda r: r["categorical"][0]["words"].update(WQ="water"), "categorical cooling.words"),
        (lambda r: r.update(classes=r["classes"][:1]), "classes"),
        (lambda r: r["classes"].append({"name": "x", "colour": "red"}), "classes.4"),
        (lambda r: r["classes"][3].update(name="matrix"), "classes.3.name"),
        (lambda r: r["classes"][1].update(color="blueish"), "classes.1.color"),
    ],
)
def test_malformed_schema_names_file_and_key(tmp_path, change, key):
    path = _broken(tmp_path, change)
    with pytest.raises(ValueError) as err:
        load_schema(path)
    assert str(path) in str(err.value) and f": {key}" in str(err.value), str(err.value)


@pytest.mark.parametrize("n", [2, 10])
def test_two_to_ten_classes_load_by_id_with_default_colours(tmp_path, n):
    """Class k is entry k; a class without a colour takes tab10's k-th."""
    path = _broken(tmp_path, lambda r: r.update(
        classes=[{"name": f"phase {k}"} for k in range(n - 1)] + [{"name": "pores", "color": "w"}]
    ))  # fmt: skip
    schema = load_schema(path)
    assert schema.class_names == (*(f"phase {k}" for k in range(n - 1)), "pores")
    assert schema.class_colors[0] == "#1f77b4" and schema.class_colors[-1] == "w"
    assert len(set(schema.class_colors[:-1])) == n - 1


@pytest.mark.parametrize("n", [1, 11])
def test_one_or_eleven_classes_are_refused_naming_the_file(tmp_path, n):
    path = _broken(tmp_path, lambda r: r.update(classes=[{"name": f"c{k}"} for k in range(n)]))
    with pytest.raises(ValueError, match=f"{path}: classes: .* is too (short|long)"):
        load_schema(path)


def test_uhcs_classes_keep_their_names_and_colours(schema):
    assert schema.class_names == ("matrix", "cementite network", "spheroidite", "Widmanstätten")
    assert schema.class_colors == ("#1f1f1f", "#4C72B0", "#DD8452", "#55A868")


def test_missing_schema_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_schema(tmp_path / "nope.yaml")


def test_shipped_schemas_are_valid():
    from conftest import REPO

    for path in sorted((REPO / "resources" / "schemas").glob("*.yaml")):
        assert load_schema(path).name
