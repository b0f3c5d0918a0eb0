from __future__ import annotations

from pathlib import Path

import pytest

from sim.config import RunConfig, load_config

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def small_config() -> RunConfig:
    return load_config(DATA / "small.yaml")


@pytest.fixture(scope="session")
def small_config_path() -> Path:
    return DATA / "small.yaml"
