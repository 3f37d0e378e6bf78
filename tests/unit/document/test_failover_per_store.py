"""spec.failover on the Kubernetes store: its own timings where the document sets none (review A1)."""

from __future__ import annotations

from pgkeel.document import parse_cluster
from pgkeel.ha.settings import HASettings

K8S = "kubernetes://db/pg"
API_P99_SLO = 1.0  # seconds: the API server's SLO for single-object mutating calls


def doc(**spec: object) -> dict:
    return {"apiVersion": "pgkeel.dev/v1alpha1", "kind": "PostgresCluster", "metadata": {"name": "pg"}, "spec": spec}


def timings(settings: HASettings) -> tuple[float, float, float, float]:
    return settings.ttl, settings.loop_wait, settings.dcs_timeout, settings.fence_deadline


def test_kubernetes_gets_its_own_timings_when_the_document_sets_none() -> None:
    settings = HASettings.from_document(parse_cluster(doc()), K8S)
    assert timings(settings) == (9.0, 1.0, 1.5, 5.0)
    assert settings.fence_deadline >= 3 * API_P99_SLO  # a renewal at the SLO's p99 never comes near the fence
    assert settings.dcs_timeout > API_P99_SLO  # a call at the SLO's p99 still fits
    # the failsafe round (after one loop and a timed-out call) runs before the fence, in any phase of a stall
    assert settings.fence_deadline > settings.loop_wait + 2 * settings.dcs_timeout
    assert settings.ttl + settings.loop_wait <= 10.0  # a crashed primary is still replaced in ≈ 10.5 s


def test_other_stores_keep_the_generic_timings() -> None:
    for url in ("", "sqlite:///var/lib/pgkeel/dcs.db", "etcd://127.0.0.1:2379"):
        assert timings(HASettings.from_document(parse_cluster(doc()), url)) == (3.0, 0.5, 0.5, 1.5)


def test_a_document_that_sets_any_timing_is_taken_as_written() -> None:
    settings = HASettings.from_document(parse_cluster(doc(failover={"ttlSeconds": 3, "loopWaitSeconds": 0.5})), K8S)
    assert timings(settings) == (3.0, 0.5, 0.5, 1.5)  # never ttl 3 with a 2 s timeout: that breaks the fence
    settings = HASettings.from_document(parse_cluster(doc(failover={"dcsTimeoutSeconds": 0.75})), K8S)
    assert timings(settings) == (3.0, 0.5, 0.75, 1.0)
    settings = HASettings.from_document(parse_cluster(doc(failover={"failsafe": False})), K8S)
    assert timings(settings) == (9.0, 1.0, 1.5, 5.0) and not settings.failsafe  # not a timing: defaults stay
