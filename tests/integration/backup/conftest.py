import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "instance"))

from backup_lab import Lab  # after the path: it imports instance_nodes
from instance_nodes import make_nodes


@pytest.fixture
def lab() -> Iterator[Lab]:
    for nodes in make_nodes():
        yield Lab(nodes)
