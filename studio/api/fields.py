"""A task's input schema read as a flat list of field specs (API media checks, web widgets).

Read from ``Task.Inputs.model_json_schema()`` (the same document the HTTP API publishes), so
a task that lands later gets its form without any change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # string | integer | number | boolean | array | object
    title: str
    description: str = ""
    default: Any = None
    required: bool = False
    nullable: bool = False
    choices: tuple[Any, ...] = ()  # enum values (for arrays: the items' enum)
    item_type: str | None = None  # for arrays
    minimum: float | None = None
    maximum: float | None = None
    media: str | None = None  # json_schema_extra["media"]
    multiline: bool = False

    @property
    def bounded(self) -> bool:
        return self.minimum is not None and self.maximum is not None


def field_specs(schema: dict[str, Any]) -> list[FieldSpec]:
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    return [_spec(name, prop, defs, name in required) for name, prop in schema.get("properties", {}).items()]


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = prop.get("$ref")
    if ref:
        return {**defs[ref.rsplit("/", 1)[-1]], **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


def _spec(name: str, prop: dict[str, Any], defs: dict[str, Any], required: bool) -> FieldSpec:
    outer = _resolve(prop, defs)
    inner, nullable = outer, False
    variants = outer.get("anyOf") or outer.get("oneOf")
    if variants:
        non_null = [_resolve(v, defs) for v in variants if v.get("type") != "null"]
        nullable = len(non_null) < len(variants)
        inner = {**non_null[0], **{k: v for k, v in outer.items() if k not in ("anyOf", "oneOf")}} if non_null else outer
    items = _resolve(inner.get("items", {}), defs) if inner.get("type") == "array" else {}
    enum = inner.get("enum") or ([inner["const"]] if "const" in inner else None) or items.get("enum") or ()
    return FieldSpec(
        name=name,
        type=inner.get("type") or _type_of_enum(enum),
        title=outer.get("title") or name.replace("_", " ").capitalize(),
        description=outer.get("description", ""),
        default=outer.get("default"),
        required=required,
        nullable=nullable,
        choices=tuple(enum),
        item_type=items.get("type") if items else None,
        minimum=_bound(inner, "minimum", "exclusiveMinimum"),
        maximum=_bound(inner, "maximum", "exclusiveMaximum"),
        media=outer.get("media") or inner.get("media"),
        multiline=bool(outer.get("multiline")) or name in ("prompt", "negative_prompt", "text"),
    )


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str) -> float | None:
    if inclusive in schema:
        return schema[inclusive]
    return schema.get(exclusive)  # a slider cannot show an open end; the API still enforces it


def _type_of_enum(enum) -> str:
    if enum and all(isinstance(v, bool) for v in enum):
        return "boolean"
    if enum and all(isinstance(v, int) for v in enum):
        return "integer"
    return "string"
