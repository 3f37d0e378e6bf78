"""The base of every document model: camelCase on the wire, unknown fields refused, values frozen.

Its own module so that model.py and backup.py (which model.py imports) share one base without a cycle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)
