"""Verilog generation of a hardware block (``llmarch verilog`` writes every registered block with it)."""

from __future__ import annotations

from amaranth.back import verilog
from amaranth.lib import wiring


def generate(name: str, component: wiring.Component) -> str:
    """Verilog text of ``component`` as module ``name``."""
    return verilog.convert(component, name=name, emit_src=False)
