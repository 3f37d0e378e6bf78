import pytest
from pgconf_docs import cluster

from pgkeel.pgconf import explain
from pgkeel.pgconf.values import MEMORY_UNITS

SIZES = {"tiny": ("500m", "512Mi", "1Gi"), "medium": ("2", "4Gi", "20Gi"), "large": ("16", "64Gi", "1Ti")}
WORKLOADS = ("oltp", "web", "dw", "mixed")


def values(doc) -> dict[str, str]:
    return {s.name: s.value for s in explain(doc)}


def to_bytes(text: str) -> int:
    for unit in ("TB", "GB", "MB", "kB"):
        if text.endswith(unit):
            return int(text[: -len(unit)]) * MEMORY_UNITS[unit]
    raise AssertionError(text)


def test_medium_oltp_matches_the_documented_table():
    v = values(cluster())
    expected = {
        "shared_buffers": "1GB", "effective_cache_size": "3GB", "max_connections": "128",
        "maintenance_work_mem": "256MB", "work_mem": "6MB", "wal_buffers": "16MB",
        "max_worker_processes": "8", "max_parallel_workers": "2", "max_parallel_workers_per_gather": "1",
        "max_parallel_maintenance_workers": "1", "random_page_cost": "1.1", "effective_io_concurrency": "200",
        "max_wal_size": "4GB", "min_wal_size": "1GB", "wal_keep_size": "1GB", "max_slot_wal_keep_size": "4GB",
        "checkpoint_completion_target": "0.9", "checkpoint_timeout": "15min",
    }
    assert {k: v[k] for k in expected} == expected


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_wal_can_never_fill_the_volume(size, workload):
    cpu, mem, disk = SIZES[size]
    doc = cluster(cpu=cpu, memory=mem, size=disk, workload=workload)
    v = values(doc)
    total = sum(to_bytes(v[n]) for n in ("min_wal_size", "max_wal_size", "wal_keep_size", "max_slot_wal_keep_size"))
    assert total <= doc.spec.storage.size_bytes // 2
    assert to_bytes(v["min_wal_size"]) >= 32 * 2**20
    assert to_bytes(v["min_wal_size"]) <= to_bytes(v["max_wal_size"])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_memory_fits_the_container(size, workload):
    cpu, mem, disk = SIZES[size]
    doc = cluster(cpu=cpu, memory=mem, size=disk, workload=workload)
    v = values(doc)
    limit = doc.spec.resources.memory_bytes
    shared = to_bytes(v["shared_buffers"])
    assert shared == limit // 4
    # every connection sorting once, plus autovacuum at full maintenance memory, stays inside the limit
    worst = shared + int(v["max_connections"]) * to_bytes(v["work_mem"]) + 3 * to_bytes(v["maintenance_work_mem"])
    assert worst <= limit
    assert to_bytes(v["wal_buffers"]) <= 16 * 2**20


def test_tiny_container_gets_no_parallel_workers_and_few_connections():
    v = values(cluster(cpu="500m", memory="512Mi", size="1Gi", instances=1))
    assert v["max_parallel_workers"] == "0" and v["max_parallel_workers_per_gather"] == "0"
    assert v["max_connections"] == "25"
    assert v["shared_buffers"] == "128MB"


def test_large_dw_uses_its_cores():
    v = values(cluster(cpu="16", memory="64Gi", size="1Ti", workload="dw"))
    assert v["max_worker_processes"] == "16" and v["max_parallel_workers"] == "16"
    assert v["max_parallel_workers_per_gather"] == "8"  # dw is not capped at 4
    assert v["max_parallel_maintenance_workers"] == "4"
    assert v["default_statistics_target"] == "500"
    assert v["max_connections"] == "40"
    assert v["maintenance_work_mem"] == "2GB"
    assert v["max_wal_size"] == "16GB"


def test_hdd_changes_planner_costs():
    v = values(cluster(kind="hdd"))
    assert (v["random_page_cost"], v["effective_io_concurrency"]) == ("4", "2")


def test_user_max_connections_feeds_work_mem():
    few = values(cluster(parameters={"max_connections": 50}))
    many = values(cluster(parameters={"max_connections": 500}))
    assert to_bytes(few["work_mem"]) > to_bytes(many["work_mem"])


def test_reasons_show_the_formula():
    by_name = {s.name: s for s in explain(cluster())}
    assert by_name["shared_buffers"].reason.startswith("25% of 4Gi memory limit = 1GB")
    assert by_name["shared_buffers"].source == "tuned"
    assert "20% of 20Gi volume" in by_name["max_wal_size"].reason
