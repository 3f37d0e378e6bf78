import pytest

from pgkeel.pgconf import load_catalogue
from pgkeel.pgconf.values import conf_token, format_bytes_for, parse_value, quote

CAT = load_catalogue(15)


@pytest.mark.parametrize(
    ("name", "raw", "text", "base"),
    [
        ("shared_buffers", "1GB", "1GB", 131072),
        ("shared_buffers", 1024, "1024", 1024),
        ("work_mem", "64MB", "64MB", 65536),
        ("checkpoint_timeout", "15min", "15min", 900),
        ("checkpoint_timeout", "1h", "1h", 3600),
        ("vacuum_cost_delay", "2ms", "2ms", 2),
        ("random_page_cost", 1.1, "1.1", 1.1),
        ("max_slot_wal_keep_size", -1, "-1", -1),
    ],
)
def test_numbers_convert_to_the_server_unit(name, raw, text, base):
    parsed = parse_value(CAT[name], raw)
    assert parsed.text == text
    assert parsed.base == pytest.approx(base)


@pytest.mark.parametrize(("raw", "text"), [(True, "on"), (False, "off"), ("yes", "on"), ("OFF", "off"), ("0", "off")])
def test_booleans(raw, text):
    assert parse_value(CAT["hot_standby"], raw).text == text


def test_yaml_on_for_an_enum_becomes_on():
    assert parse_value(CAT["synchronous_commit"], True).text == "on"
    assert parse_value(CAT["wal_level"], "Logical").text == "logical"


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("shared_buffers", "1Gi", "unit 'Gi' is not valid for this memory parameter (did you mean GB?)"),
        ("shared_buffers", "1KB", "did you mean kB?"),
        ("shared_buffers", "10s", "unit 's' is not valid"),
        ("shared_buffers", "8", "out of range: must be between 16 and 1073741823 × 8kB; got '8'"),
        ("work_mem", "lots", "must be an integer, optionally with a unit (B, kB, MB, GB, TB); got 'lots'"),
        ("max_connections", 10.5, "must be an integer; got 10.5"),
        ("max_connections", "100MB", "takes no unit"),
        ("max_connections", 0, "out of range: must be between 1 and 262143"),
        ("hot_standby", "maybe", "must be a boolean (on or off); got 'maybe'"),
        ("wal_level", "archive2", "must be one of minimal, replica, logical; got 'archive2'"),
        ("huge_pages", False, None),
        ("application_name", "a\nb", "line break"),
        ("random_page_cost", "-1", "out of range"),
    ],
)
def test_bad_values_are_explained(name, raw, message):
    if message is None:
        assert parse_value(CAT[name], raw).text == "off"
        return
    with pytest.raises(ValueError) as err:
        parse_value(CAT[name], raw)
    assert message in str(err.value)


def test_formatting_is_exact_for_the_server_unit():
    assert format_bytes_for("8kB", 2**30) == "1GB"
    assert format_bytes_for("8kB", 4026531) == "3928kB"  # rounded down to whole 8kB pages
    assert format_bytes_for("MB", 5 * 2**20 + 1) == "5MB"


def test_conf_tokens_quote_only_when_needed():
    assert conf_token("1GB", "integer") == "1GB"
    assert conf_token("scram-sha-256", "enum") == "scram-sha-256"
    assert conf_token("1e-3", "real") == "'1e-3'"
    assert conf_token("demo", "string") == "'demo'"
    assert quote("it's\\") == "'it''s\\\\'"
