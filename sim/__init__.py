"""llmarch's simulation side: contracts, execution API, block models, system models, studies, CLI.

Compiled model kernels are cached on disk (numba ``cache=True``). numba keys a cached kernel on the file that
defines it only, while the kernels inline rules from other files (the memory model, the stall hash), so the
cache lives in a folder named by a hash of every source file here: any edit under ``sim/`` starts a fresh cache.
"""

import hashlib
import os
from pathlib import Path


def _numba_cache_dir() -> Path:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(here.rglob("*.py")):
        digest.update(str(path.relative_to(here)).encode())
        digest.update(path.read_bytes())
    root = Path(os.environ.get("LLMARCH_CACHE", here.parent / ".cache"))
    return root / "numba" / digest.hexdigest()[:16]


os.environ.setdefault("NUMBA_CACHE_DIR", str(_numba_cache_dir()))
