"""The execution API (see `sim.exec.api`): the block registry, `run` and `agree`."""

from sim.exec.api import (
    BLOCKS,
    Agreement,
    Block,
    Result,
    ResultTable,
    Stalls,
    Target,
    UnknownBlock,
    agree,
    get,
    register,
    run,
)

__all__ = ["BLOCKS", "Agreement", "Block", "Result", "ResultTable", "Stalls", "Target", "UnknownBlock", "agree",
           "get", "register", "run", "blocks"]


def blocks() -> dict[str, Block]:
    """Every registered block, by name (importing `sim.blocks` registers them)."""
    import sim.blocks  # noqa: F401

    return dict(sorted(BLOCKS.items()))
