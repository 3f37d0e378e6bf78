"""Three machines without Kubernetes, driven only through the user-facing commands of docs/multi-machine.md.

The lab's network namespaces are the machines (198.18.0.11-13), each with one member of an etcd 3.4
cluster that serves clients over TLS with username/password auth on. ONE document and `pgkeel secrets
init` make the per-member bundles; each machine gets its bundle and runs `pgkeel node run --member NAME`.
Checks: a primary is elected and both replicas stream (over TLS, the API over HTTPS), a second
`node run` of the same member is refused, wrong etcd credentials and an unreachable endpoint are
one clear message each, and killing the primary's agent and postgres leads to a new primary.
Needs root (network namespaces), /usr/bin/etcd and PostgreSQL 15.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
import yaml
from machines import MEMBERS, Machines, chown_postgres, three_machines

from pgkeel.lab.netns import SUBNET_PREFIX
from pgkeel.lab.procs import signal_group, signal_tree

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("etcd") is None or shutil.which("ip") is None, reason="needs etcd and iproute2"),
]


@pytest.fixture(scope="module")
def machines() -> Iterator[Machines]:
    with three_machines(SUBNET_PREFIX) as made:  # the lab's own /24: waits for its lock
        yield made


def test_three_machines_from_one_document_elect_stream_and_fail_over(machines: Machines) -> None:
    made = machines.install()
    assert made.returncode == 0, made.stderr
    assert not any((machines.bundle(m) / "ca.key").exists() for m in MEMBERS)

    started = time.monotonic()
    for member in MEMBERS:
        machines.start(member)
    primary = machines.wait_healthy(MEMBERS, timeout=180)
    print(f"\nstart to a healthy 3-machine cluster: {time.monotonic() - started:.1f} s (primary {primary})")

    second = subprocess.run(machines.node_run(primary), capture_output=True, text=True, timeout=60)
    assert second.returncode == 1 and "already running" in second.stderr, second.stderr

    proc = machines.agents[primary]
    postmaster = machines.postmaster(primary)
    assert postmaster is not None
    killed = time.monotonic()
    signal_group(proc.pid, signal.SIGKILL)
    signal_tree(postmaster, signal.SIGKILL)
    proc.wait(timeout=10)
    others = [m for m in MEMBERS if m != primary]
    deadline = time.monotonic() + 90
    while True:
        snap = {m: machines.status(m) for m in others}
        new = [m for m, s in snap.items() if s and s.get("role") == "primary" and s.get("is_leader")]
        if new:
            break
        assert time.monotonic() < deadline, snap
        time.sleep(0.2)
    print(f"kill primary {primary} (agent + postgres) to new primary {new[0]}: {time.monotonic() - killed:.1f} s")

    machines.start(primary)  # the old primary comes back as a replica of the new one
    assert machines.wait_healthy(MEMBERS, timeout=180) == new[0]


def test_wrong_etcd_credentials_are_one_message_naming_the_user(machines: Machines) -> None:
    wrong = machines.root / "wrong-password"
    wrong.write_text("not-it\n")
    chown_postgres(wrong)
    data = yaml.safe_load(machines.document.read_text())
    data["spec"]["store"]["etcd"]["auth"]["passwordFile"] = str(wrong)
    document = machines.root / "wrong.yaml"
    document.write_text(yaml.safe_dump(data))
    run = subprocess.run(machines.node_run("db1", document, machines.root / "scratch-1"),
                         capture_output=True, text=True, timeout=60)
    text = " ".join(run.stderr.split())
    assert run.returncode == 1 and "authenticating as 'pgkeel'" in text and "Traceback" not in text, run.stderr


def test_an_unreachable_endpoint_is_one_message_saying_what_to_check(machines: Machines) -> None:
    data = yaml.safe_load(machines.document.read_text())
    data["spec"]["store"]["etcd"]["endpoints"] = [f"https://{SUBNET_PREFIX}.99:2379"]
    document = machines.root / "unreachable.yaml"
    document.write_text(yaml.safe_dump(data))
    run = subprocess.run(machines.node_run("db1", document, machines.root / "scratch-2"),
                         capture_output=True, text=True, timeout=60)
    text = " ".join(run.stderr.split())
    assert run.returncode == 1, run.stderr
    assert f"https://{SUBNET_PREFIX}.99:2379" in text and "Check that etcd runs" in text, run.stderr
    assert "Traceback" not in text
