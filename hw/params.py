"""Validated block parameters, shared by each block's RTL, cycle model and testbenches."""

from __future__ import annotations

import dataclasses
from typing import Any


def param(default: int, lo: int, hi: int) -> Any:
    """A parameter field: an ``int`` in ``lo..hi`` (checked when the parameters are made)."""
    return dataclasses.field(default=default, metadata={"range": (lo, hi)})


@dataclasses.dataclass(frozen=True, kw_only=True)
class BlockParams:
    """Base of the blocks' parameter classes: keyword ints, range-checked, immutable, hashable.

    Subclasses declare their fields with `param` and add cross-field rules in ``_check``. A wrong type raises
    ``TypeError`` and a value out of range ``ValueError``, both naming the class and the field.
    """

    def __post_init__(self) -> None:
        name = type(self).__name__
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name}.{f.name} must be an int, not {value!r}")
            lo, hi = f.metadata["range"]
            if not lo <= value <= hi:
                raise ValueError(f"{name}.{f.name} must be an integer in {lo}..{hi}, not {value}")
        self._check()

    def _check(self) -> None:
        """Cross-field rules; raise ``ValueError``."""

    def _require(self, ok: bool, field: str, expected: str) -> None:
        if not ok:
            raise ValueError(f"{type(self).__name__}.{field} must be {expected}, not {getattr(self, field)}")

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
