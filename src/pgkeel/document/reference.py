"""The field reference of the `PostgresCluster` document, generated from the models.

Written from the same pydantic models that validate documents and generate the CRD, so the
reference cannot drift from what `validate` accepts; `docs/reference.md` is its output and a
test checks that the committed file is current (`make reference` writes it).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pgkeel.document.model import PostgresCluster

HEADER = """# PostgresCluster reference

Every field of the cluster document, its type, default and meaning. Generated from the models that
validate documents (`pgkeel validate`), so it lists exactly what is accepted; regenerate with
`make reference`. Field names are camelCase. Unknown fields are refused with a suggestion.

```yaml
apiVersion: pgkeel.dev/v1alpha1
kind: PostgresCluster
metadata: {name: postgresql}
spec: {}          # every field below has a default
```
"""


@dataclass(frozen=True)
class FieldRow:
    path: str
    type: str
    default: str
    meaning: str


def _type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" (optional)" if type(None) in args else "")
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map of {_type_name(args[0])} → {_type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    if annotation is str:
        return "string"
    if annotation is int:
        return "integer"
    if annotation is float:
        return "number"
    if annotation is bool:
        return "boolean"
    return str(annotation).replace("typing.", "")


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "see below"
        return f"`{value!r}`" if value else "empty"
    if info.default is PydanticUndefined:
        return "**required**"
    if info.default is None:
        return "none"
    if isinstance(info.default, bool):
        return f"`{str(info.default).lower()}`"
    if isinstance(info.default, float) and info.default.is_integer():
        return f"`{int(info.default)}`"
    return f"`{info.default}`"


def _bounds(info: FieldInfo) -> str:
    words = []
    for item in info.metadata:
        for kind, attr, sign in ((Ge, "ge", "≥"), (Gt, "gt", ">"), (Le, "le", "≤"), (Lt, "lt", "<")):
            if isinstance(item, kind):
                words.append(f"{sign} {getattr(item, attr):g}")
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if "minimum" in extra and "maximum" in extra:
        words.append(f"{extra['minimum']}–{extra['maximum']}")
    return f" ({', '.join(words)})" if words else ""


def _model_of(annotation: object) -> tuple[type[BaseModel] | None, str]:
    """The model a field holds, and how: "" (itself or optional, `a.b`) or "[]" (a list of them, `a[].b`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in args if a is not type(None)]
        if len(models) == 1:
            return _model_of(models[0])
    if origin is list and args:
        child, _ = _model_of(args[0])
        return child, "[]" if child is not None else ""
    return None, ""


def fields(model: type[BaseModel], prefix: str = "") -> Iterator[FieldRow]:
    """Every field below `model`, depth first, by its wire name (`spec.failover.ttlSeconds`, `spec.members[].name`)."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{info.alias or name}"
        child, many = _model_of(info.annotation)
        meaning = info.description or (child.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        kind = ("list of object" if many else "object") if child is not None else _type_name(info.annotation)
        yield FieldRow(path, kind + _bounds(info), _default(info), meaning)
        if child is not None:
            yield from fields(child, f"{path}{many}.")


def _section(path: str) -> str:
    """The table a field belongs to: `spec.failover.ttlSeconds` → `spec.failover`; `kind` → ``."""
    parts = path.replace("[]", "").split(".")
    return ".".join(parts[:2]) if parts[0] == "spec" and len(parts) > 2 else ".".join(parts[:-1])


def reference_markdown() -> str:
    """docs/reference.md: one table per section of the document, each led by its model's docstring."""
    sections: dict[str, list[FieldRow]] = {"": []}
    leads: dict[str, str] = {"": "The document's kind and version."}
    for row in fields(PostgresCluster):
        if row.type in ("object", "list of object"):
            leads[row.path] = row.meaning
            sections.setdefault(row.path, [])
            if row.type == "object":
                continue
        sections.setdefault(_section(row.path), []).append(row)
    out = [HEADER]
    for name, rows in sections.items():
        if not rows:
            continue
        out.append(f"\n## {f'`{name}`' if name else 'Top level'}\n\n{leads[name]}\n")
        out.append("| field | type | default | meaning |\n|---|---|---|---|")
        out.extend(f"| `{r.path}` | {r.type} | {r.default} | {r.meaning} |" for r in rows)
    return "\n".join(out) + "\n"
