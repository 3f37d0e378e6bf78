"""Where a cluster's records live in a key-value store: everything under /pgkeel/<scope>/.

One layout for every key-value backend, so tools can find a cluster's records by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgkeel.dcs.base import check_name


@dataclass(frozen=True)
class KeyLayout:
    """Key names for one cluster (`scope`); the trailing '/' keeps scope 'a' apart from 'ab'."""

    scope: str

    def __post_init__(self) -> None:
        check_name("scope", self.scope)

    @property
    def prefix(self) -> str:
        return f"/pgkeel/{self.scope}/"

    @property
    def leader(self) -> str:
        return self.prefix + "leader"

    @property
    def term(self) -> str:
        """Written in the same transaction as every leader acquisition; its revision is the term."""
        return self.prefix + "term"

    @property
    def initialize(self) -> str:
        return self.prefix + "initialize"

    @property
    def sync(self) -> str:
        return self.prefix + "sync"

    @property
    def switchover(self) -> str:
        return self.prefix + "switchover"

    @property
    def history(self) -> str:
        """The leader-history record: no lease, replaced only by a live leader."""
        return self.prefix + "history"

    @property
    def members(self) -> str:
        return self.prefix + "members/"

    def member(self, name: str) -> str:
        return self.members + check_name("member name", name)

    def value(self, key: str) -> str:
        """An operator-level value (DCS.set_value): no lease, CAS on its mod_revision."""
        return self.prefix + "values/" + key

    @property
    def values(self) -> str:
        return self.prefix + "values/"
