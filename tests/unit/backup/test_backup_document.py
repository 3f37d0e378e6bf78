"""spec.backup and spec.bootstrap.fromBackup: bad input names the field and the fix; archiving renders only with it."""

from __future__ import annotations

from typing import Any

import pytest

from pgkeel.document import SpecError, parse_cluster
from pgkeel.pgconf import render_config


def _doc(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster", "metadata": {"name": "db"}, "spec": spec}


REPO = {"volume": {"path": "/var/lib/pgbackrest"}}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"backup": {"repositories": []}}, "spec.backup.repositories: .*at least one repository"),
        ({"backup": {"repositories": [{}]}}, r"spec.backup.repositories\[0\]: .*exactly one of volume"),
        ({"backup": {"repositories": [{"volume": {"path": "rel"}}]}}, "path: .*absolute path"),
        ({"backup": {"repositories": [REPO], "schedule": {"full": "0 25 * * *"}}}, "schedule.full: .*hour: 25"),
        ({"backup": {"repositories": [REPO], "schedule": {"diff": "* * *"}}}, "schedule.diff: .*needs 5 fields"),
        ({"backup": {"repositories": [REPO], "retention": {"full": 2, "fullDays": 7}}}, "either full .* or fullDays"),
        ({"bootstrap": {"fromBackup": {"repository": REPO, "target": {"time": "2024-05-01T12:00:00"}}}},
         "target.*needs a UTC offset"),
        ({"bootstrap": {"fromBackup": {"repository": REPO, "target": {"lsn": "zz"}}}}, "WAL position like 0/3000060"),
        ({"bootstrap": {"fromBackup": {"repository": REPO, "target": {"lsn": "0/1", "name": "x"}}}},
         "exactly one of time, lsn or name"),
    ],
)
def test_bad_backup_settings_name_the_field_and_the_fix(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_cluster(_doc(spec))


def test_archiving_is_rendered_only_with_spec_backup_and_is_the_same_for_every_node() -> None:
    plain = render_config(parse_cluster(_doc({})), config_dir="/etc/pg").postgresql_conf
    assert "archive_command" not in plain and "restore_command" not in plain
    conf = render_config(parse_cluster(_doc({"backup": {"repositories": [REPO]}})), config_dir="/etc/pg")
    by_name = {s.name: s for s in conf.settings}
    assert by_name["archive_mode"].value == "on"
    assert by_name["archive_command"].value == (
        'pgbackrest --config=/etc/pg/pgbackrest.conf --stanza=db --pg1-path="$PWD" archive-push "$PWD/%p"'
    )
    assert "archive-get %f" in by_name["restore_command"].value
    assert all(by_name[n].reason.startswith("spec.backup") for n in ("archive_mode", "archive_command"))


def test_archive_settings_cannot_be_overridden_while_spec_backup_manages_them() -> None:
    cluster = parse_cluster(_doc({"backup": {"repositories": [REPO]}, "postgres": {"parameters": {
        "archive_command": "/bin/true"}}}))
    with pytest.raises(Exception, match=r"managed by spec.backup"):
        render_config(cluster)


def test_kubernetes_refuses_a_volume_repository_no_pod_shares_rather_than_keep_every_segment() -> None:
    from pgkeel.k8s.manifests import kubernetes_problems

    cluster = parse_cluster(_doc({"backup": {"repositories": [REPO]}}))
    problems = kubernetes_problems(cluster)  # a volume every pod mounts, or each archives into its own
    assert any(p.startswith("spec.backup.repositories[0].volume.claimName: ") for p in problems)
    shared = {"volume": {"path": "/var/lib/pgbackrest", "claimName": "backups"}}
    assert kubernetes_problems(parse_cluster(_doc({"backup": {"repositories": [shared]}}))) == []
    assert kubernetes_problems(parse_cluster(_doc({}))) == []


def test_from_backup_is_accepted_for_up_and_refused_where_nothing_can_restore_yet() -> None:
    from pgkeel.k8s.manifests import kubernetes_problems
    from pgkeel.node.run import run_node

    cluster = parse_cluster(_doc({"bootstrap": {"fromBackup": {"repository": REPO}}}))
    assert cluster.spec.bootstrap.from_backup is not None
    assert any(p.startswith("spec.bootstrap.fromBackup: restoring a new cluster is only available with `pgkeel up`")
               for p in kubernetes_problems(cluster))
    with pytest.raises(ValueError, match=r"spec.bootstrap.fromBackup: .*only available with `pgkeel up`"):
        run_node(cluster, None, None)  # type: ignore[arg-type]  # refused before either is used
