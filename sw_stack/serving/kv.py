"""KV cache block managers over a pool of fixed-size blocks (16 tokens each by default).

A request's blocks are a list of runs ``[(start, length), ...]`` in logical order; adjacent runs are always
merged, so the number of runs is the number of contiguous pieces. Two managers share one interface:

`PagedAllocator`
    vLLM-like: a LIFO free list of single blocks; a request's blocks land wherever the free list says.
`BuddyAllocator`
    FastSwitch's dynamic block group manager, buddy-style: free space is kept as aligned power-of-two groups
    per order and coalesced with its buddy on free. An allocation of n blocks takes one group of the smallest
    order that holds n and gives the unused tail back (so there is no internal fragmentation); a request
    grows in place when the block after its last run is free. Only when no group is large enough does an
    allocation fall back to several groups, largest first, so it succeeds whenever n blocks are free.
"""

from __future__ import annotations

Run = tuple[int, int]


class KvPoolError(Exception):
    """An allocation larger than the free space, or a free of blocks that are not allocated."""


def merge_runs(runs: list[Run], new: list[Run]) -> None:
    """Append ``new`` to ``runs`` in place, merging physically adjacent neighbours."""
    for start, length in new:
        if runs and runs[-1][0] + runs[-1][1] == start:
            runs[-1] = (runs[-1][0], runs[-1][1] + length)
        else:
            runs.append((start, length))


def run_blocks(runs: list[Run]) -> int:
    return sum(length for _, length in runs)


def copy_pairs(src: list[Run], dst: list[Run], skip: int = 0, count: int | None = None) -> list[tuple[int, int, int]]:
    """The contiguous copies ``(src block, dst block, blocks)`` moving logical blocks ``[skip, skip + count)``
    of a request from ``src`` runs to ``dst`` runs (a copy ends wherever either side stops being contiguous)."""
    total = min(run_blocks(src), run_blocks(dst))
    end = total if count is None else min(total, skip + count)
    out: list[tuple[int, int, int]] = []
    i = j = 0
    s_left = src[0][1] if src else 0
    d_left = dst[0][1] if dst else 0
    pos = 0
    while pos < end:
        take = min(s_left, d_left, end - pos)
        if pos + take > skip:
            cut = max(0, skip - pos)
            out.append((src[i][0] + src[i][1] - s_left + cut, dst[j][0] + dst[j][1] - d_left + cut, take - cut))
        pos += take
        s_left -= take
        d_left -= take
        if s_left == 0 and pos < end:
            i += 1
            s_left = src[i][1]
        if d_left == 0 and pos < end:
            j += 1
            d_left = dst[j][1]
    return out


def copy_segments(src: list[Run], dst: list[Run], skip: int = 0, count: int | None = None) -> list[int]:
    """Lengths (in blocks) of the contiguous copies of `copy_pairs`."""
    return [n for _, _, n in copy_pairs(src, dst, skip, count)]


class PagedAllocator:
    """vLLM-like block manager: a LIFO free list of single blocks."""

    def __init__(self, num_blocks: int) -> None:
        if num_blocks < 1:
            raise ValueError("a pool needs at least one block")
        self.num_blocks = num_blocks
        self._free = list(range(num_blocks - 1, -1, -1))  # pop() hands out 0, 1, 2, ... first

    @property
    def free_blocks(self) -> int:
        return len(self._free)

    def allocate(self, n: int) -> list[Run]:
        if n > len(self._free):
            raise KvPoolError(f"cannot allocate {n} blocks, {len(self._free)} free")
        runs: list[Run] = []
        pop = self._free.pop
        for _ in range(n):
            merge_runs(runs, [(pop(), 1)])
        return runs

    def extend(self, runs: list[Run], n: int = 1) -> None:
        """Add ``n`` blocks to a request's runs."""
        merge_runs(runs, self.allocate(n))

    def free(self, runs: list[Run]) -> None:
        if run_blocks(runs) + len(self._free) > self.num_blocks:
            raise KvPoolError("freeing more blocks than are allocated")
        for start, length in reversed(runs):
            self._free.extend(range(start + length - 1, start - 1, -1))

    def free_runs(self) -> int:
        """Number of contiguous free pieces (a fragmentation measure)."""
        ids = sorted(self._free)
        return sum(1 for k, b in enumerate(ids) if k == 0 or ids[k - 1] != b - 1)


class BuddyAllocator:
    """Dynamic block group manager: buddy allocation with exact-size groups and in-place growth."""

    def __init__(self, num_blocks: int, max_order: int = 10) -> None:
        if num_blocks < 1:
            raise ValueError("a pool needs at least one block")
        self.num_blocks = num_blocks
        self.max_order = max_order
        self._sets: list[set[int]] = [set() for _ in range(max_order + 1)]
        self._nfree = 0
        self._release(0, num_blocks)

    @property
    def free_blocks(self) -> int:
        return self._nfree

    def free_groups(self) -> list[tuple[int, int]]:
        """All free groups as (start, order), sorted (for tests and fragmentation checks)."""
        return sorted((s, k) for k, st in enumerate(self._sets) for s in st)

    def free_runs(self) -> int:
        """Number of contiguous free pieces (adjacent free groups count as one)."""
        groups = self.free_groups()
        n, end = 0, -1
        for s, k in groups:
            if s != end:
                n += 1
            end = s + (1 << k)
        return n

    # internals ----------------------------------------------------------------------------------------
    def _free_group(self, start: int, k: int) -> None:
        sets, top = self._sets, self.max_order
        while k < top:
            buddy = start ^ (1 << k)
            if buddy in sets[k]:
                sets[k].remove(buddy)
                start = min(start, buddy)
                k += 1
            else:
                break
        sets[k].add(start)

    def _release(self, start: int, length: int) -> None:
        """Return an arbitrary range to the free groups (aligned power-of-two pieces, coalesced)."""
        self._nfree += length
        top = self.max_order
        while length > 0:
            align = (start & -start).bit_length() - 1 if start else top
            k = min(top, align, length.bit_length() - 1)
            self._free_group(start, k)
            start += 1 << k
            length -= 1 << k

    def _take_block(self, b: int) -> bool:
        """Remove the single free block ``b`` from the free groups; False if it is not free."""
        sets = self._sets
        for k in range(self.max_order + 1):
            s = b & ~((1 << k) - 1)
            if s in sets[k]:
                sets[k].remove(s)
                self._nfree -= 1 << k
                if b > s:
                    self._release(s, b - s)
                if s + (1 << k) > b + 1:
                    self._release(b + 1, s + (1 << k) - b - 1)
                return True
        return False

    # interface ----------------------------------------------------------------------------------------
    def allocate(self, n: int) -> list[Run]:
        if n > self._nfree:
            raise KvPoolError(f"cannot allocate {n} blocks, {self._nfree} free")
        runs: list[Run] = []
        sets = self._sets
        while n > 0:
            want = min(n, 1 << self.max_order)
            k = (want - 1).bit_length()
            j = next((o for o in range(k, self.max_order + 1) if sets[o]), -1)
            if j < 0:  # no group holds the rest: take the largest free group whole
                j = next(o for o in range(k - 1, -1, -1) if sets[o])
                start = sets[j].pop()
                self._nfree -= 1 << j
                take = 1 << j
            else:
                start = sets[j].pop()
                self._nfree -= 1 << j
                while j > k:  # split, keeping the lower half
                    j -= 1
                    self._free_group(start + (1 << j), j)
                    self._nfree += 1 << j
                take = want
                if (1 << k) > take:
                    self._release(start + take, (1 << k) - take)
            merge_runs(runs, [(start, take)])
            n -= take
        return runs

    def extend(self, runs: list[Run], n: int = 1) -> None:
        """Grow a request by ``n`` blocks, in place after its last run while those blocks are free."""
        while n > 0 and runs:
            b = runs[-1][0] + runs[-1][1]
            if b >= self.num_blocks or not self._take_block(b):
                break
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            n -= 1
        if n > 0:
            merge_runs(runs, self.allocate(n))

    def free(self, runs: list[Run]) -> None:
        if run_blocks(runs) + self._nfree > self.num_blocks:
            raise KvPoolError("freeing more blocks than are allocated")
        for start, length in runs:
            self._release(start, length)
