from __future__ import annotations

from pathlib import Path

import pytest

from sim.core.config import RunConfig, load_config

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def small_config() -> RunConfig:
    return load_config(DATA / "small.yaml")


@pytest.fixture(scope="session")
def small_config_path() -> Path:
    return DATA / "small.yaml"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rtl: runs a design on Verilator (deselect with -m 'not rtl')")


@pytest.fixture(autouse=True)
def _rtl_tests_are_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that builds or runs Verilator without the ``rtl`` marker fails, so ``-m 'not rtl'`` stays true."""
    if request.node.get_closest_marker("rtl") is None:
        import cocotb_tools.runner

        from sim.rtl import bare, runner

        def refuse(*_a, **_k):
            raise AssertionError(f"{request.node.nodeid} uses Verilator: mark it @pytest.mark.rtl")

        monkeypatch.setattr(cocotb_tools.runner, "get_runner", refuse)  # every cocotb build and run
        monkeypatch.setattr(runner, "verilator_root", refuse)  # every Verilator build, bare loops included
        monkeypatch.setattr(bare, "run", refuse)  # a cached bare loop
