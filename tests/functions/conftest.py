from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from durablehost.functions import FunctionIndex, load_app

APPS = Path(__file__).parent / "apps"


@pytest.fixture
def apps() -> Path:
    return APPS


@pytest.fixture
def basic() -> FunctionIndex:
    return load_app(APPS / "basic")


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="activity") as pool:
        yield pool
