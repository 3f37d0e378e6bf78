"""The reliability lab in async mode (kill-primary; kill-agent, whose primary is now fenced inside
postgres and replaced) and the lab network's cleanup on failure.

Separate from test_lab_faults.py so that module's shared lab cluster (and the lab lock) is gone first.
"""

from __future__ import annotations

import os
import shutil

import pytest
from test_lab_faults import run_one

from pgkeel.lab.netns import Network, lab_lock, leftovers

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("etcd") is None or shutil.which("ip") is None, reason="needs etcd and iproute2"),
]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("fault", ["kill-primary", "kill-agent"])
def test_lab_async_fault_is_safe_and_rejoins(fault: str) -> None:
    run_one("async", fault)


def test_lab_network_is_removed_even_when_the_body_fails() -> None:
    net = Network(2)
    with lab_lock(), pytest.raises(RuntimeError), net:
        net.partition(0)
        net.heal(0)
        raise RuntimeError("boom")
    assert not net.created
    assert not [n for n in leftovers() if net.tag in n]
