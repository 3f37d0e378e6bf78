"""What PostgreSQL is told: GUC catalogue per major, resource tuning, postgresql.conf and pg_hba.conf."""

from pgkeel.pgconf.catalogue import Guc, available_majors, classify_change, load_catalogue
from pgkeel.pgconf.errors import ConfigError
from pgkeel.pgconf.hba import HbaError, HbaRule, parse_rule
from pgkeel.pgconf.render import RenderedConfig, Setting, explain, render_config
from pgkeel.pgconf.validate import validate_cluster

__all__ = [
    "ConfigError",
    "Guc",
    "HbaError",
    "HbaRule",
    "RenderedConfig",
    "Setting",
    "available_majors",
    "classify_change",
    "explain",
    "load_catalogue",
    "parse_rule",
    "render_config",
    "validate_cluster",
]
