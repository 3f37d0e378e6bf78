"""Fixtures: a real ApiServer (module-scoped, and fresh ones on demand) in front of a FakeAgent."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from api_fakes import TOKEN, Running


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    running = Running(TOKEN)
    yield running
    running.stop()


@pytest.fixture
def make_server() -> Iterator[Any]:
    made: list[Running] = []

    def make(token: str | None = TOKEN) -> Running:
        running = Running(token)
        made.append(running)
        return running

    yield make
    for running in made:
        running.stop()
