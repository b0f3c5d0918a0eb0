"""One package per hardware block: its cycle model, reference, RTL harness and cocotb testbench side by side.

Importing this package imports every block package in it, and each registers itself with the execution API
(`sim.exec.register`): a new block is one ``hw/<block>.py`` and one package here, nothing else to edit.
"""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
    if _info.ispkg:
        importlib.import_module(f"{__name__}.{_info.name}")
