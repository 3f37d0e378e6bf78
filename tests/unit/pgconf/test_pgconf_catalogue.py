import pytest

from pgkeel.pgconf import classify_change, load_catalogue
from pgkeel.pgconf.catalogue import available_majors, closest_name


def test_every_supported_major_ships_a_catalogue():
    assert available_majors() == (13, 14, 15, 16, 17)


def test_pg15_catalogue_describes_types_units_and_ranges():
    cat = load_catalogue(15)
    assert len(cat) > 300
    sb = cat["shared_buffers"]
    assert (sb.vartype, sb.context, sb.unit, sb.min) == ("integer", "postmaster", "8kB", 16)
    assert sb.needs_restart
    assert cat["wal_level"].enumvals == ("minimal", "replica", "logical")
    assert cat["random_page_cost"].vartype == "real"
    assert cat["hot_standby"].vartype == "bool"
    assert cat["work_mem"].unit == "kB" and not cat["work_mem"].needs_restart


def test_catalogues_differ_where_postgres_did():
    assert "promote_trigger_file" in load_catalogue(15)
    assert "promote_trigger_file" not in load_catalogue(16)
    assert "wal_keep_size" in load_catalogue(13)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("shared_buffers", "restart"), ("max_connections", "restart"), ("work_mem", "reload"),
     ("max_slot_wal_keep_size", "reload"), ("wal_level", "restart"), ("pg_stat_statements.max", "restart")],
)
def test_classify_change(name, kind):
    assert classify_change(15, name) == kind


def test_classify_unknown_name_raises():
    with pytest.raises(KeyError):
        classify_change(15, "shared_bufers")


def test_closest_name_fixes_typos():
    assert closest_name(15, "shared_bufers") == "shared_buffers"
    assert closest_name(15, "effective_cache") == "effective_cache_size"
    assert closest_name(15, "zzzzzz") is None


def test_unknown_major():
    with pytest.raises(ValueError, match="no parameter catalogue for PostgreSQL 12"):
        load_catalogue(12)
