"""Validated block parameters, shared by each block's RTL, cycle model and testbenches."""

from __future__ import annotations

import dataclasses
from typing import Any


class ParamError(ValueError):
    """A block parameter out of range or inconsistent; ``field`` names the parameter."""

    def __init__(self, cls: str, field: str, expected: str, value: object) -> None:
        self.field, self.expected, self.value = field, expected, value
        super().__init__(f"{cls}.{field} must be {expected}, not {value}")


def param(default: int, lo: int, hi: int) -> Any:
    """A parameter field: an ``int`` in ``lo..hi`` (checked when the parameters are made)."""
    return dataclasses.field(default=default, metadata={"range": (lo, hi)})


@dataclasses.dataclass(frozen=True, kw_only=True)
class BlockParams:
    """Base of the blocks' parameter classes: keyword ints, range-checked, immutable, hashable.

    Subclasses declare their fields with `param` and add cross-field rules in ``_check``. A wrong type raises
    ``TypeError`` and a value out of range `ParamError` (a ``ValueError``), both naming the class and the field;
    the config loader turns them into config errors naming the file and the key.
    """

    def __post_init__(self) -> None:
        name = type(self).__name__
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name}.{f.name} must be an int, not {value!r}")
            lo, hi = f.metadata["range"]
            if not lo <= value <= hi:
                raise ParamError(name, f.name, f"an integer in {lo}..{hi}", value)
        self._check()

    def _check(self) -> None:
        """Cross-field rules; raise ``ValueError``."""

    def _require(self, ok: bool, field: str, expected: str) -> None:
        if not ok:
            raise ParamError(type(self).__name__, field, expected, getattr(self, field))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
