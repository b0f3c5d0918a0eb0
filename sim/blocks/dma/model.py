"""Cycle model of the DMA engine (`hw.dma.DmaEngine`), stepped one cycle at a time.

It mirrors the RTL's registers: the descriptor table, the dispatch stage, the channels with their round-robin
burst turns, the in-order header FIFO that pairs read responses with packets, and the status FIFO. Its memory
port is any object with the `sim.blocks.memory.model.SimpleMemoryModel` port methods (``cmd_ready``, ``push_cmd``,
``rsp_valid``, ``rsp_data``, ``pop_rsp``); the caller steps the memory after the DMA each cycle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hw.dma import DmaError, DmaOp, DmaParams
from sim.blocks.memory.model import SimpleMemoryModel


@dataclass
class Descriptor:
    src_addr: int
    dst_device: int
    dst_addr: int
    length: int
    op: int
    tag: int
    valid: int = 1


@dataclass
class DmaRun:
    packets: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)  # cycle, dev, addr, op, data, tag
    statuses: list[tuple[int, int, int, int]] = field(default_factory=list)  # cycle, desc, tag, error
    cycles: int = 0


class DmaModel:
    def __init__(self, params: DmaParams, num_devices: int) -> None:
        self.p = params
        self.num_devices = num_devices
        self.table: dict[int, Descriptor] = {}
        self.channels: list[dict | None] = [None] * params.channels
        self.d_index: int | None = None
        self.err_pending: tuple[int, int, int] | None = None
        self.turn = 0
        self.in_burst = 0
        self.headers: deque[tuple] = deque()  # (dst_device, addr, op, tag, desc, last)
        self.statuses: deque[tuple[int, int, int]] = deque()

    def program(self, index: int, desc: Descriptor) -> None:
        self.table[index] = desc

    # --- one cycle -------------------------------------------------------------------------------------
    def _free(self) -> int | None:
        return next((i for i, c in enumerate(self.channels) if c is None), None)

    def trigger_ready(self) -> bool:
        return self._free() is not None and self.d_index is None and self.err_pending is None

    def idle(self) -> bool:
        return (all(c is None for c in self.channels) and self.d_index is None and self.err_pending is None
                and not self.headers and not self.statuses)

    def _check(self, d: Descriptor | None) -> int:
        if d is None or not d.valid:
            return DmaError.UNPROGRAMMED
        if d.op == DmaOp.NOTIFY:
            return DmaError.OK
        if d.op > DmaOp.NOTIFY:
            return DmaError.BAD_OP
        if d.length % (1 << self.p.length_bits) == 0:
            return DmaError.ZERO_LENGTH
        if d.dst_device >= self.num_devices:
            return DmaError.BAD_DEVICE
        if d.src_addr % 4 or d.dst_addr % 4 or d.length % 4:
            return DmaError.MISALIGNED
        return DmaError.OK

    def cycle(self, t: int, mem, trigger: int | None, link_ready: bool, status_ready: bool,
              run: DmaRun) -> bool:
        """Advance one cycle; ``trigger`` is the descriptor offered this cycle (or None). Returns whether the
        trigger was taken."""
        p = self.p
        free = self._free()
        take = trigger is not None and free is not None and self.d_index is None and self.err_pending is None
        n_statuses, n_headers = len(self.statuses), len(self.headers)

        # Status output (FIFO contents from before this cycle).
        if n_statuses and status_ready:
            desc, tag, err = self.statuses.popleft()
            run.statuses.append((t, desc, tag, err))
        # Responses -> packets.
        pushes: list[tuple[int, int, int]] = []
        sent = False
        if mem.rsp_valid() and n_headers:
            dev, addr, op, tag, desc, last = self.headers[0]
            if (not last or n_statuses < p.status_depth) and link_ready:
                run.packets.append((t, dev, addr, op, mem.rsp_data(), tag))
                mem.pop_rsp()
                self.headers.popleft()
                sent = True
                if last:
                    pushes.append((desc, tag, int(DmaError.OK)))
        if self.err_pending is not None and not (sent and pushes) and n_statuses < p.status_depth:
            pushes.append(self.err_pending)
            self.err_pending = None
            err_cleared = True
        else:
            err_cleared = False

        # Read issue (round robin over the channels active at the start of the cycle).
        n = p.channels
        active = [c is not None for c in self.channels]
        new_header = None
        if any(active):
            cur = self.turn
            if not active[cur]:
                cur = next(((self.turn + k) % n for k in range(1, n) if active[(self.turn + k) % n]), cur)
            if n_headers < p.outstanding and mem.cmd_ready():
                ch = self.channels[cur]
                last = ch["left"] == 1
                mem.push_cmd(ch["src"], 0, 0)
                new_header = (ch["dev"], ch["dst"], ch["op"], ch["tag"], ch["desc"], last)
                mask = (1 << p.addr_bits) - 1  # the channel's word addresses wrap, as the RTL registers do
                ch["src"] = (ch["src"] + 1) & mask
                ch["dst"] = (ch["dst"] + 1) & mask
                ch["left"] -= 1
                if last:
                    self.channels[cur] = None
                if self.in_burst == p.burst - 1 or last:
                    self.in_burst, self.turn = 0, (0 if cur == n - 1 else cur + 1)
                else:
                    self.in_burst, self.turn = self.in_burst + 1, cur

        # Dispatch of the descriptor read last cycle.
        if self.d_index is not None:
            d = self.table.get(self.d_index)
            err = self._check(d)
            if err != DmaError.OK or d.op == DmaOp.NOTIFY:
                assert not err_cleared or self.err_pending is None
                self.err_pending = (self.d_index, d.tag if d else 0, int(err))
            else:
                mask = (1 << p.addr_bits) - 1
                self.channels[free] = {"src": (d.src_addr >> 2) & mask, "dst": (d.dst_addr >> 2) & mask,
                                       "left": (d.length % (1 << p.length_bits)) >> 2, "dev": d.dst_device,
                                       "op": d.op & 3, "tag": d.tag, "desc": self.d_index}
            self.d_index = None
        if take:
            self.d_index = trigger

        if new_header is not None:
            self.headers.append(new_header)
        self.statuses.extend(pushes)
        return take


def run_dma(params: DmaParams, num_devices: int, descriptors: dict[int, Descriptor], memory: SimpleMemoryModel,
            triggers: Sequence[tuple[int, int]], link_ready: Callable[[int], bool] | None = None,
            status_ready: Callable[[int], bool] | None = None, max_cycles: int = 10_000_000) -> DmaRun:
    """Run triggers ``(available cycle, desc)`` in order through a DMA model on ``memory``."""
    dma = DmaModel(params, num_devices)
    for i, d in descriptors.items():
        dma.program(i, d)
    run = DmaRun()
    i = 0
    for t in range(max_cycles):
        if i == len(triggers) and dma.idle():
            run.cycles = t
            return run
        offered = triggers[i][1] if i < len(triggers) and triggers[i][0] <= t else None
        if dma.cycle(t, memory, offered, link_ready is None or link_ready(t),
                     status_ready is None or status_ready(t), run):
            i += 1
        memory.step()
    raise RuntimeError(f"DMA model did not finish within {max_cycles} cycles")
