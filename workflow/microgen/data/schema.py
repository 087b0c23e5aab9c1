"""Condition schemas: which process variables a data set has and how prompts name them.

A schema file (``resources/schemas/{dataset}.yaml``) lists continuous variables (name, unit,
placeholder token, whether to log-transform and clip them before normalisation) and
categorical variables (name, categories, placeholder token, the words a prompt uses for each
category), the prompt templates of the three prompt modes and, for a labelled data set, the
classes of its masks (one name and colour per class id). Everything downstream that needs to
know the variables (metadata columns, prompts, the parameter-aware conditioner) or the
classes (the segmenter's outputs, the per-class tables, the mask figures) reads them from
here, so a new data set needs only a new schema file.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from microgen.data.checks import MissingFileError

PROMPT_MODES = ("full_text", "text_only", "parameter_only")
#: Colours of classes whose schema entry names none, by class id: matplotlib's ``tab10``
#: (a schema holds at most 10 classes).
DEFAULT_CLASS_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip


@dataclass(frozen=True)
class ContinuousVariable:
    """A continuous process variable (e.g. annealing temperature in °C)."""

    name: str
    label: str
    unit: str
    placeholder: str
    log: bool = False
    clip: bool = False
    format: str = "{value:g}"

    def text(self, value: float) -> str:
        """The value as prompt text, e.g. ``800 °C``."""
        return self.format.format(value=float(value))


@dataclass(frozen=True)
class CategoricalVariable:
    """A categorical process variable (e.g. cooling method)."""

    name: str
    label: str
    placeholder: str
    categories: tuple[str, ...]
    words: dict[str, str] = field(default_factory=dict)
    short: dict[str, str] = field(default_factory=dict)

    def index(self, category: str) -> int:
        """Position of ``category`` in the category list (the embedding-table row)."""
        try:
            return self.categories.index(category)
        except ValueError:
            raise ValueError(
                f"{self.name}: unknown category {category!r}; "
                f"expected one of {list(self.categories)}"
            ) from None

    def text(self, category: str) -> str:
        """The words a prompt uses for ``category``."""
        self.index(category)
        return self.words.get(category, category)


@dataclass(frozen=True)
class MaskClass:
    """One class of a data set's masks; its id (the value masks store) is its position in
    :attr:`ConditionSchema.classes`."""

    name: str
    color: str


@dataclass(frozen=True)
class ConditionSchema:
    """The process variables of one data set, its prompt templates and its mask classes
    (empty for a data set without masks)."""

    name: str
    continuous: tuple[ContinuousVariable, ...]
    categorical: tuple[CategoricalVariable, ...]
    prompts: dict[str, str]
    condition_label: str
    classes: tuple[MaskClass, ...] = ()

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the mask classes by class id (``matrix``, ``cementite network``, …)."""
        return tuple(c.name for c in self.classes)

    @property
    def class_colors(self) -> tuple[str, ...]:
        """Colours of the mask classes by class id (matplotlib colour strings)."""
        return tuple(c.color for c in self.classes)

    @property
    def variables(self) -> tuple[str, ...]:
        """Names of all variables, continuous first: the metadata columns they occupy."""
        return tuple(v.name for v in self.continuous) + tuple(v.name for v in self.categorical)

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Placeholder tokens in variable order (``<temp>``, ``<time>``, …)."""
        return tuple(v.placeholder for v in self.continuous) + tuple(
            v.placeholder for v in self.categorical
        )

    def variable(self, name: str) -> ContinuousVariable | CategoricalVariable:
        for v in (*self.continuous, *self.categorical):
            if v.name == name:
                return v
        raise KeyError(f"schema {self.name!r} has no variable {name!r}")

    def validate_condition(self, condition: dict) -> None:
        """Raise ``ValueError`` naming the first variable that is missing or invalid."""
        for v in self.continuous:
            if v.name not in condition or condition[v.name] is None:
                raise ValueError(f"condition lacks continuous variable {v.name!r}")
            value = float(condition[v.name])
            if v.log and value <= 0:
                raise ValueError(f"{v.name} = {value} must be > 0 (the schema log-transforms it)")
        for c in self.categorical:
            if c.name not in condition:
                raise ValueError(f"condition lacks categorical variable {c.name!r}")
            c.index(str(condition[c.name]))

    def label(self, condition: dict) -> str:
        """Short label of a condition in the paper's notation, e.g. ``800C-180M-4910x-Q-S``."""
        fields = {v.name: float(condition[v.name]) for v in self.continuous}
        for c in self.categorical:
            category = str(condition[c.name])
            fields[c.name] = category
            fields[f"{c.name}_short"] = c.short.get(category, category)
        return self.condition_label.format(**fields)

    def prompt(self, condition: dict, mode: str = "full_text") -> str:
        """Prompt text of ``condition`` in one of the three prompt modes of the paper.

        ``full_text``: words and numbers with the placeholder tokens the parameter-aware
        conditioner replaces; ``text_only``: the same words and numbers, no placeholders;
        ``parameter_only``: only the placeholders.
        """
        if mode not in self.prompts:
            raise ValueError(f"unknown prompt mode {mode!r}; expected one of {PROMPT_MODES}")
        self.validate_condition(condition)
        fields = {}
        for v in self.continuous:
            fields[v.name] = v.text(condition[v.name])
            fields[f"<{v.name}>"] = v.placeholder
        for c in self.categorical:
            fields[c.name] = c.text(str(condition[c.name]))
            fields[f"<{c.name}>"] = c.placeholder
        # Placeholder fields are written {<micro>} in templates; map them by placeholder too.
        for v in (*self.continuous, *self.categorical):
            fields[v.placeholder] = v.placeholder
        text = _format_template(self.prompts[mode], fields)
        return " ".join(text.split())


def _format_template(template: str, fields: dict[str, str]) -> str:
    out = []
    for literal, name, spec, _conv in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if name not in fields:
            raise KeyError(f"prompt template field {{{name}}} is not a schema variable")
        out.append(format(fields[name], spec or ""))
    return "".join(out)


#: JSON schema every condition schema file is validated against.
SCHEMA_OF_SCHEMAS = Path(__file__).with_name("condition-schema.schema.yaml")


def _check_structure(raw: object, path: Path) -> None:
    """Validate ``raw`` against the JSON schema; the error names the file and the key."""
    import jsonschema

    meta = yaml.safe_load(SCHEMA_OF_SCHEMAS.read_text())
    errors = sorted(
        jsonschema.Draft202012Validator(meta).iter_errors(raw), key=lambda e: list(e.path)
    )
    if errors:
        error = errors[0]
        key = ".".join(str(k) for k in error.absolute_path) or "(top level)"
        raise ValueError(f"{path}: {key}: {error.message}")


def _check_fields(schema: ConditionSchema, path: Path) -> None:
    """Every ``{field}`` of a prompt template or the condition label names a variable."""
    variables = (*schema.continuous, *schema.categorical)
    known = {v.name for v in variables} | {f"<{v.name}>" for v in variables}
    known |= {v.placeholder for v in variables}
    label_known = {v.name for v in variables} | {f"{c.name}_short" for c in schema.categorical}
    templates = [(f"prompts.{m}", text, known) for m, text in schema.prompts.items()]
    templates.append(("condition_label", schema.condition_label, label_known))
    for key, text, allowed in templates:
        for _literal, name, _spec, _conv in string.Formatter().parse(text):
            if name is not None and name not in allowed:
                raise ValueError(
                    f"{path}: {key}: unknown placeholder {{{name}}}; "
                    f"the schema's fields are {sorted(allowed)}"
                )
    for c in schema.categorical:
        for key in ("words", "short"):
            stray = set(getattr(c, key)) - set(c.categories)
            if stray:
                raise ValueError(
                    f"{path}: categorical {c.name}.{key}: {sorted(stray)} "
                    f"not among its categories {list(c.categories)}"
                )


def _classes(raw: list[dict], path: Path) -> tuple[MaskClass, ...]:
    """The ``classes`` entries (validated by the JSON schema) as :class:`MaskClass` by id,
    colours defaulting to :data:`DEFAULT_CLASS_COLORS`; a repeated name or a string that is
    no matplotlib colour names the file and the key."""
    from matplotlib.colors import is_color_like

    classes = tuple(
        MaskClass(str(c["name"]), str(c.get("color", DEFAULT_CLASS_COLORS[k])))
        for k, c in enumerate(raw)
    )
    names = [c.name for c in classes]
    for k, c in enumerate(classes):
        if names.index(c.name) != k:
            first = names.index(c.name)
            raise ValueError(f"{path}: classes.{k}.name: {c.name!r} also names class {first}")
        if not is_color_like(c.color):
            raise ValueError(f"{path}: classes.{k}.color: {c.color!r} is not a matplotlib colour")
    return classes


def load_schema(path: str | Path, config_key: str | None = None) -> ConditionSchema:
    """Read a condition schema YAML file (``resources/schemas/{dataset}.yaml``).

    The file is validated against ``condition-schema.schema.yaml`` (2 to 10 ``classes``
    when it has any), its templates against its variables and its class names and colours;
    any error names the file and the key. ``config_key`` names the
    config key the path came from (``dataset.schema``), so that a missing file says where
    to correct it.
    """
    path = Path(path)
    if not path.is_file():
        origin = f" (set by the config key {config_key})" if config_key else ""
        raise MissingFileError(f"condition schema {path} does not exist{origin}")
    with path.open() as fh:
        raw = yaml.safe_load(fh)
    _check_structure(raw, path)
    try:
        continuous = tuple(ContinuousVariable(**v) for v in raw.get("continuous", []))
        categorical = tuple(
            CategoricalVariable(
                name=c["name"],
                label=c.get("label", c["name"]),
                placeholder=c["placeholder"],
                categories=tuple(str(x) for x in c["categories"]),
                words={str(k): str(w) for k, w in (c.get("words") or {}).items()},
                short={str(k): str(w) for k, w in (c.get("short") or {}).items()},
            )
            for c in raw.get("categorical", [])
        )
        schema = ConditionSchema(
            name=raw["name"],
            continuous=continuous,
            categorical=categorical,
            prompts=dict(raw["prompts"]),
            condition_label=raw.get(
                "condition_label",
                "-".join([f"{{{v.name}:g}}" for v in continuous])
                + "".join(f"-{{{c.name}}}" for c in categorical),
            ),
            classes=_classes(raw.get("classes", []), path),
        )
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: malformed condition schema ({err})") from err
    missing = [m for m in PROMPT_MODES if m not in schema.prompts]
    if missing:
        raise ValueError(f"{path}: prompts lacks the mode(s) {missing}")
    placeholders = schema.placeholders
    if len(set(placeholders)) != len(placeholders):
        raise ValueError(f"{path}: placeholder tokens must be unique, got {placeholders}")
    _check_fields(schema, path)
    return schema
