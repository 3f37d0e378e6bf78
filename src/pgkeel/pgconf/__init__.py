"""What PostgreSQL is told: GUC catalogue per major, resource tuning, postgresql.conf and pg_hba.conf."""

from pgkeel.pgconf.catalogue import Guc, available_majors, classify_change, load_catalogue
from pgkeel.pgconf.errors import ConfigError
from pgkeel.pgconf.hba import HbaError, HbaRule, parse_rule
from pgkeel.pgconf.libraries import missing_libraries
from pgkeel.pgconf.render import RenderedConfig, Setting, explain, render_config
from pgkeel.pgconf.validate import config_warnings, validate_cluster, validate_document

__all__ = [
    "ConfigError",
    "Guc",
    "HbaError",
    "HbaRule",
    "RenderedConfig",
    "Setting",
    "available_majors",
    "classify_change",
    "config_warnings",
    "explain",
    "load_catalogue",
    "missing_libraries",
    "parse_rule",
    "render_config",
    "validate_cluster",
    "validate_document",
]
