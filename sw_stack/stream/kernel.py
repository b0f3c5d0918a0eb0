"""STREAM's kernels as one description every target runs (McCalpin's STREAM rules).

A repetition runs the four kernels in STREAM's order over three arrays ``a``, ``b``, ``c`` of ``n`` elements,
each kernel written as ``dst = f(sources)`` (`Kernel`): copy ``c = a``, scale ``b = q*c``, add ``c = a + b``,
triad ``a = b + q*c``. STREAM's other rules, kept by every target: the arrays start as ``a = 1, b = 2, c = 0``
and ``a`` is doubled once before the repetitions; each host array is at least 4x the last-level cache; 10
repetitions, the best time of each kernel taken over all but the first; bytes counted per element are the
arrays the kernel touches times the element size (write-allocate traffic not counted); MB/s with 1e6; the arrays
are validated at the end against the same recurrence run on scalars (`expected`, `validate`).

llmarch's element type is fp32 on every target (STREAM's ``STREAM_TYPE=float``): the near-memory datapath is
fp32, and one element type lets the same kernel be checked bit for bit everywhere. So the counted bytes per
element are 8/8/12/12 (STREAM's 16/16/24/24 are for doubles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw.stream import StreamOp

DTYPE = np.dtype(np.float32)
SCALAR = 3.0  # STREAM's q
REPETITIONS = 10  # STREAM's NTIMES
ARRAYS = ("a", "b", "c")
INIT = {"a": 1.0, "b": 2.0, "c": 0.0}
EPSILON = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-13}  # STREAM's checkSTREAMresults bounds


@dataclass(frozen=True)
class Kernel:
    name: str
    op: StreamOp
    dst: str
    src: tuple[str, ...]  # b (and c) of the op, in its operand order

    @property
    def arrays(self) -> int:
        """Arrays the kernel moves per element (STREAM's byte count is this times the element size)."""
        return 1 + len(self.src)

    def bytes(self, n: int, itemsize: int = DTYPE.itemsize) -> int:
        return self.arrays * n * itemsize


SEQUENCE = (
    Kernel("copy", StreamOp.COPY, "c", ("a",)),
    Kernel("scale", StreamOp.SCALE, "b", ("c",)),
    Kernel("add", StreamOp.ADD, "c", ("a", "b")),
    Kernel("triad", StreamOp.TRIAD, "a", ("b", "c")),
)
KERNELS = {k.name: k for k in SEQUENCE}


def initial(n: int, dtype: np.dtype = DTYPE) -> dict[str, np.ndarray]:
    """STREAM's starting arrays, after its one doubling of ``a``."""
    arrays = {name: np.full(n, INIT[name], dtype=dtype) for name in ARRAYS}
    arrays["a"] *= dtype.type(2.0)
    return arrays


def apply(kernel: Kernel, arrays: dict[str, np.ndarray], q: float = SCALAR) -> None:
    """One kernel with numpy, in place (the native code: whole-array ufuncs into the existing destination)."""
    dst = arrays[kernel.dst]
    src = [arrays[s] for s in kernel.src]
    qv = dst.dtype.type(q)
    if kernel.op is StreamOp.COPY:
        np.copyto(dst, src[0])
    elif kernel.op is StreamOp.SCALE:
        np.multiply(src[0], qv, out=dst)
    elif kernel.op is StreamOp.ADD:
        np.add(src[0], src[1], out=dst)
    else:  # TRIAD: q*c into the destination, then b + it (two roundings, as numpy's b + q*c)
        np.multiply(src[1], qv, out=dst)
        np.add(src[0], dst, out=dst)


def expected(repetitions: int, q: float = SCALAR, dtype: np.dtype = DTYPE) -> dict[str, float]:
    """The value every element of each array holds after ``repetitions`` (STREAM's scalar recurrence)."""
    t = dtype.type
    v = {name: t(INIT[name]) for name in ARRAYS}
    v["a"] = t(2.0) * v["a"]
    qv = t(q)
    for _ in range(repetitions):
        v["c"] = v["a"]
        v["b"] = qv * v["c"]
        v["c"] = v["a"] + v["b"]
        v["a"] = v["b"] + qv * v["c"]
    return {name: float(x) for name, x in v.items()}


def validate(arrays: dict[str, np.ndarray], repetitions: int, q: float = SCALAR) -> dict[str, float]:
    """STREAM's check: each array's mean absolute error relative to the expected value; {} when all pass."""
    dtype = next(iter(arrays.values())).dtype
    want = expected(repetitions, q, dtype)
    failed = {}
    for name, arr in arrays.items():
        err = float(np.mean(np.abs(arr.astype(np.float64) - want[name]))) / abs(want[name])
        if not err <= EPSILON[dtype]:
            failed[name] = err
    return failed
