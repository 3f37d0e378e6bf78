import pytest
from pgconf_docs import cluster

from pgkeel.pgconf import ConfigError, render_config, validate_cluster


def errors(**kw) -> list[str]:
    return validate_cluster(cluster(**kw))


def test_the_examples_are_fine():
    assert errors() == []
    assert errors(instances=1, parameters={"wal_level": "logical", "work_mem": "16MB"}) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"shared_bufers": "1GB"},
         "spec.postgres.parameters.shared_bufers: unknown parameter for PostgreSQL 15; did you mean shared_buffers?"),
        ({"Shared_Buffers": "1GB"}, "spec.postgres.parameters.Shared_Buffers: parameter names are lower-case; "
                                    "write shared_buffers"),
        ({"shared_buffers": "1Gi"}, "spec.postgres.parameters.shared_buffers: unit 'Gi' is not valid for this memory "
                                    "parameter (did you mean GB?)"),
        ({"max_connections": 999999}, "spec.postgres.parameters.max_connections: out of range: must be between 1 and "
                                      "262143; got 999999"),
        ({"wal_level": "minimal"}, "spec.postgres.parameters.wal_level: wal_level = minimal disables streaming "
                                   "replication"),
        ({"hot_standby": False}, "spec.postgres.parameters.hot_standby: hot_standby = off"),
        ({"wal_log_hints": "off"}, "spec.postgres.parameters.wal_log_hints: wal_log_hints = off breaks pg_rewind"),
        ({"fsync": "off"}, "spec.postgres.parameters.fsync: fsync = off can corrupt"),
        ({"max_wal_senders": 3}, "spec.postgres.parameters.max_wal_senders: 3 instances need at least "
                                 "instances + 2 = 5"),
        ({"max_replication_slots": 4}, "spec.postgres.parameters.max_replication_slots: 3 instances need at least"),
        ({"password_encryption": "md5"}, "spec.postgres.parameters.password_encryption: md5 password hashes are "
                                         "refused"),
        ({"synchronous_commit": "off"}, "spec.postgres.parameters.synchronous_commit: synchronous_commit = off in "
                                        "quorum mode would lose acknowledged writes on failover"),
        ({"synchronous_commit": "local"}, "would lose acknowledged writes"),
        ({"primary_conninfo": "host=x"}, "spec.postgres.parameters.primary_conninfo: managed by the pgkeel agent"),
        ({"synchronous_standby_names": "*"}, "managed by the pgkeel agent"),
        ({"port": 5433}, "spec.postgres.parameters.port: set per node by the pgkeel agent"),
        ({"hba_file": "/tmp/x"}, "pgkeel lays out the files"),
        ({"cluster_name": "x"}, "set from metadata.name"),
        ({"block_size": 8192}, "spec.postgres.parameters.block_size: read-only"),
        ({"max_slot_wal_keep_size": -1}, "spec.postgres.parameters.max_slot_wal_keep_size: -1 lets replication "
                                         "slots keep WAL without limit"),
        ({"max_wal_size": "100GB"}, "spec.postgres.parameters.max_wal_size: WAL could fill the volume: "
                                    "min_wal_size 1GB + max_wal_size 100GB + wal_keep_size 1GB + "
                                    "max_slot_wal_keep_size 4GB = 106GB exceeds half of the 20Gi volume (10GB)"),
        ({"min_wal_size": "16MB"}, "spec.postgres.parameters.min_wal_size: must be at least two 16MB WAL segments"),
        ({"application_name": "x\ny = 1"}, "line break"),
        ({"pg_stat_statements.track": "all\nfsync = off"}, "line break"),
    ],
)
def test_bad_parameters_are_refused_with_a_reason(params, message):
    found = errors(parameters=params)
    assert len(found) == 1, found
    assert message in found[0]


def test_async_mode_allows_synchronous_commit_off():
    assert errors(instances=3, mode="async", parameters={"synchronous_commit": "off"}) == []


def test_senders_scale_with_instances():
    assert errors(instances=5, parameters={"max_wal_senders": 12}) == []
    assert "instances + 2 = 7" in errors(instances=5, parameters={"max_wal_senders": 6})[0]


def test_every_problem_is_reported_at_once_and_render_refuses():
    doc = cluster(parameters={"shared_bufers": "1GB", "wal_level": "minimal"}, hba=["host all all 0.0.0.0/0 trust"])
    with pytest.raises(ConfigError) as err:
        render_config(doc)
    assert len(err.value.errors) == 3
    assert err.value.errors == validate_cluster(doc)


def test_versions_below_13_are_refused():
    doc = cluster().model_copy(deep=True)
    postgres = doc.spec.postgres.model_copy(update={"version": 12})
    doc = doc.model_copy(update={"spec": doc.spec.model_copy(update={"postgres": postgres})})
    assert validate_cluster(doc) == [
        "spec.postgres.version: PostgreSQL 12 is not supported: pgkeel needs 13 or newer "
        "(wal_keep_size appeared in 13); set spec.postgres.version to 15"
    ]
    with pytest.raises(ConfigError):
        render_config(doc)


@pytest.mark.parametrize("major", [13, 14, 16, 17])
def test_other_majors_render(major):
    rendered = render_config(cluster(version=major))
    assert "wal_level = replica" in rendered.postgresql_conf


def test_extension_parameters_pass_through():
    rendered = render_config(cluster(parameters={"shared_preload_libraries": "pg_stat_statements",
                                                 "pg_stat_statements.track": "all"}))
    by_name = {s.name: s for s in rendered.settings}
    assert by_name["pg_stat_statements.track"].source == "user"
    assert "pg_stat_statements.track = 'all'" in rendered.postgresql_conf
