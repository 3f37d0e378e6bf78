"""The one exception pgconf raises for a document it cannot turn into a configuration."""

from __future__ import annotations


class ConfigError(Exception):
    """Every problem found at once, one `field.path: problem; fix` line each, so a user fixes all in one go."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)
