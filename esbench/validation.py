"""One validation dialect for every config in esbench: annotations say the type, metadata the range.

A config is a frozen dataclass. Each field's annotation gives its type (int,
float, bool, str, a `Literal[...]` of allowed values, `tuple[int, ...]`,
`X | None`) and, where the type alone is not enough, `rule(test, allowed)`
in its metadata adds a range:

    pop_size: int = field(default=2048, metadata=rule(lambda v: v >= 2 and v % 2 == 0, "an even integer >= 2"))

`validate(cfg, owner)` checks every field and raises one `ConfigError` in one
format, "<owner>.<field> = <value> is invalid; allowed: <allowed>";
`build(cls, values, owner)` first coerces raw values (YAML, command line) to
the declared types, so "3e-4" (a string to YAML 1.1) becomes 0.0003 and
[64, 64] a tuple. Cross-field checks raise `invalid(...)`, the same format.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable


class ConfigError(ValueError):
    """A bad config value; the message names the field and the allowed values."""


class NameTakenError(ValueError):
    """Registering an environment or algorithm under a name already registered (`kind`, `name`)."""

    def __init__(self, kind: str, name: str):
        super().__init__(
            f"{kind} {'id ' if kind == 'environment' else ''}{name!r} is already registered; "
            f"pass overwrite=True to replace it"
        )
        self.kind, self.name = kind, name


def invalid(owner: str, name: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{owner}.{name} = {value!r} is invalid; allowed: {allowed}")


def suggest(name: str, allowed) -> str:
    """' Did you mean X?' for the closest of `allowed`, or ''."""
    close = difflib.get_close_matches(str(name), [str(a) for a in allowed], n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class Rule:
    test: Callable[[Any], bool]
    allowed: str


def rule(test: Callable[[Any], bool], allowed: str) -> dict:
    """Field metadata: the value must pass `test`; `allowed` says in words what passes."""
    return {"rule": Rule(test, allowed)}


def default_from(row: dict, name: str, kind: type, rules: dict) -> dataclasses.Field:
    """A dataclass field defaulting to `row[name]` (cast to `kind`, so 1 becomes 1.0), with `rules[name]` if any."""
    value = row[name] if kind in (bool, str) else kind(row[name])
    return dataclasses.field(default=value, metadata=rules.get(name, {}))


def _is_union(annotation) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def describe(annotation) -> str:
    """The allowed values of a type, in words."""
    if _is_union(annotation):
        return " or ".join("null" if a is type(None) else describe(a) for a in typing.get_args(annotation))
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return ", ".join(
            str(v).lower() if isinstance(v, bool) else str(v) for v in typing.get_args(annotation)
        )
    if origin is tuple:
        return f"a list of {describe(typing.get_args(annotation)[0])}s"
    return {int: "an integer", float: "a number", bool: "true, false", str: "a string"}.get(
        annotation, str(annotation)
    )


def numeric_string(value: Any) -> Any:
    """A string that YAML 1.1 left unparsed ("3e-4", "1e7") as the number it spells, else unchanged."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _as_type(value: Any, annotation) -> tuple[bool, Any]:
    """(ok, value converted to `annotation`)."""
    if annotation is Any:
        return True, value
    if _is_union(annotation):
        for option in typing.get_args(annotation):
            if option is type(None):
                if value is None:
                    return True, None
                continue
            ok, converted = _as_type(value, option)
            if ok:
                return True, converted
        return False, value
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        # 1.0 == 1 == True in Python: compare the type too
        return any(value == a and type(value) is type(a) for a in allowed), value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        item_type = typing.get_args(annotation)[0]
        items = [_as_type(v, item_type) for v in value]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        value = numeric_string(value)
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            return False, value
        return True, int(value)
    if annotation is float:
        value = numeric_string(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        return True, float(value)
    if annotation is str:
        return isinstance(value, str), value
    return True, value


def _fields(cls) -> dict[str, tuple[Any, dataclasses.Field]]:
    hints = typing.get_type_hints(cls, include_extras=False)
    return {f.name: (hints[f.name], f) for f in dataclasses.fields(cls)}


def check_value(
    owner: str, name: str, value: Any, annotation, f: dataclasses.Field | None = None, coerce: bool = True
) -> Any:
    """`value` converted to the field's type and checked against its rule, or ConfigError.

    Without `coerce` (a config built in Python) the value must already be of the type: no numeric
    strings, no 3.0 for an integer (an integer for a number is fine).
    """
    ok, converted = _as_type(value, annotation)
    if ok and not coerce and isinstance(value, (str, float)) and type(converted) is not type(value):
        ok = False
    found = f.metadata.get("rule") if f is not None else None
    allowed = describe(annotation) if found is None else found.allowed
    if not ok:
        raise invalid(owner, name, value, allowed)
    if found is not None and converted is not None and not found.test(converted):
        raise invalid(owner, name, value, allowed)
    return converted


def field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def check_names(cls, values: Any, owner: str, what: str = "field") -> dict[str, Any]:
    """`values` if it is a mapping of `cls`'s field names; ConfigError naming the first unknown key."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{owner}: expected a mapping, got {type(values).__name__} {values!r}")
    names = field_names(cls)
    for key in values:
        if key not in names:
            raise ConfigError(
                f"{owner}.{key}: unknown {what}.{suggest(key, names)} Allowed: {', '.join(names)}"
            )
    return values


def build(cls, values: Any, owner: str):
    """An instance of the config dataclass `cls` from raw `values`, coerced and validated."""
    fields = _fields(cls)
    values = check_names(cls, values, owner)
    converted = {
        name: check_value(owner, name, v, fields[name][0], fields[name][1]) for name, v in values.items()
    }
    cfg = cls(**converted)
    if hasattr(cfg, "validate"):
        cfg.validate(owner)  # the config's own cross-field checks, after validate(cfg, owner)
    else:
        validate(cfg, owner)
    return cfg


def validate(cfg, owner: str) -> None:
    """Check every field of `cfg` against its annotation and rule; ConfigError on the first failure."""
    for name, (annotation, f) in _fields(type(cfg)).items():
        check_value(owner, name, getattr(cfg, name), annotation, f, coerce=False)
