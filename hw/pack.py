"""Pack and unpack `amaranth.lib.data.StructLayout` values as integers (for testbenches and drivers)."""

from __future__ import annotations

from amaranth.lib import data


def pack(layout: data.StructLayout, **fields: int) -> int:
    """The integer whose bits hold ``fields`` at their layout offsets; unknown names raise ``KeyError``."""
    word = 0
    for name, value in fields.items():
        fld = layout[name]
        word |= (int(value) & ((1 << fld.width) - 1)) << fld.offset
    return word


def unpack(layout: data.StructLayout, word: int) -> dict[str, int]:
    return {name: (word >> fld.offset) & ((1 << fld.width) - 1) for name, fld in layout}
