"""llmarch's simulation side: contracts, execution API, block models, system models, studies, CLI.

Compiled model kernels are cached on disk (numba ``cache=True``). numba keys a cached kernel on the file that
defines it only, while the kernels inline rules from other files (the memory model, the stall hash), so the
cache lives in a folder named by a hash of every source file here: any edit under ``sim/`` starts a fresh cache.

OpenBLAS runs single-threaded unless the environment says otherwise: llmarch's matrix products are small
(attention over a cache block, a decode step's few rows), its heavy kernels run on numba's threads, and OpenBLAS
threads that spin after a product take the cores from them (measured: Hogwild!'s decode step 40 % slower).
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
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
