"""Cycle model of the DMA engine (`hw.dma.DmaEngine`), stepped one cycle at a time.

It mirrors the RTL's registers: the descriptor table, the dispatch stage, the channels with their round-robin
burst turns, the in-order header FIFO that pairs read responses with packets, and the status FIFO.

One source of truth, two ways to run it. The rules are written once, as the ``dma_*`` functions
(`numba.extending.register_jitable`) over a state vector (``D_*`` slots, the parameters included) and flat
rings: the table (``T_W`` ints per index), the channels (``C_W`` per channel), the header FIFO (``H_W`` per read
in flight) and the status FIFO (3 per status):

* `run_dma_fast` (the block's ``model`` runner) runs them compiled, with the memory's rules
  (`sim.blocks.memory.model`, ``mem_*``), in one jitted loop over a whole trigger table (`dma_kernel`), with the
  output backpressure of `sim.core.stimulus.ReadyPattern` (`sim.core.fast.ready_nb`).
* `DmaModel`, the class the device model composes (`sim.blocks.t3_device.model`), calls the *same* functions
  uncompiled on Python lists (a jitted call per cycle from Python costs more than the interpreted rule). Its
  memory port is any object with the `sim.blocks.memory.model.MemPort` methods (``cmd_ready``, ``push_cmd``,
  ``rsp_valid``, ``rsp_data``, ``pop_rsp``); the caller steps the memory after the DMA each cycle. `run_dma`
  steps it on a `SimpleMemoryModel`; ``tests/blocks/dma/test_dma_fast.py`` runs both ways on the same stimuli.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numba
import numpy as np
from numba.extending import register_jitable

from hw.dma import DmaError, DmaOp, DmaParams
from sim.blocks.memory.model import (
    SimpleMemoryModel,
    mem_cmd_ready,
    mem_pop,
    mem_push,
    mem_rsp_data,
    mem_rsp_valid,
    mem_state,
    mem_step,
)
from sim.core.fast import ready_nb


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


# The state vector: dispatch stage, pending error status, burst turn, the two FIFO rings, this cycle's outputs, and
# the parameters the rules use.
D_DINDEX, D_ERR, D_ERR_DESC, D_ERR_TAG, D_ERR_CODE, D_TURN, D_INBURST, D_HHEAD, D_HN, D_SHEAD, D_SN = range(11)
D_O_SDESC, D_O_STAG, D_O_SERR, D_O_PDEV, D_O_PADDR, D_O_POP, D_O_PTAG, D_O_CADDR = range(11, 19)
D_CHANNELS, D_BURST, D_OUTSTANDING, D_SDEPTH, D_AMASK, D_LMOD, D_NDEV, D_NDESC = range(19, 27)
D_N = 27
# Table rows: programmed and valid, src byte address, device, dst byte address, byte length, op, tag.
T_VALID, T_SRC, T_DEV, T_DST, T_LEN, T_OP, T_TAG = range(7)
T_W = 7
# Channel rows: active, src word, dst word, words left, device, op, tag, descriptor index.
C_ACTIVE, C_SRC, C_DST, C_LEFT, C_DEV, C_OP, C_TAG, C_DESC = range(8)
C_W = 8
# Header rows (one per read in flight): device, dst word, op, tag, descriptor index, last word of its descriptor.
H_DEV, H_ADDR, H_OP, H_TAG, H_DESC, H_LAST = range(6)
H_W = 6
# Flags `dma_step` returns.
TAKEN, STATUS, PACKET, COMMAND = 1, 2, 4, 8

_OK, _UNPROGRAMMED, _ZERO, _BAD_DEVICE, _MISALIGNED, _BAD_OP = (
    int(DmaError.OK), int(DmaError.UNPROGRAMMED), int(DmaError.ZERO_LENGTH), int(DmaError.BAD_DEVICE),
    int(DmaError.MISALIGNED), int(DmaError.BAD_OP))
_NOTIFY = int(DmaOp.NOTIFY)


def dma_state(params: DmaParams, num_devices: int) -> list[int]:
    """A reset state vector (a list; ``np.array(..., np.int64)`` of it for a kernel)."""
    st = [0] * D_N
    st[D_DINDEX] = -1
    st[D_CHANNELS], st[D_BURST], st[D_OUTSTANDING] = params.channels, params.burst, params.outstanding
    st[D_SDEPTH], st[D_AMASK], st[D_LMOD] = params.status_depth, (1 << params.addr_bits) - 1, 1 << params.length_bits
    st[D_NDEV], st[D_NDESC] = num_devices, params.descriptors
    return st


# The rules ---------------------------------------------------------------------------------------------------

@register_jitable
def dma_free(st, ch):
    """The first free channel, -1 if none."""
    for c in range(st[D_CHANNELS]):
        if not ch[C_W * c + C_ACTIVE]:
            return c
    return -1


@register_jitable
def dma_trigger_ready(st, ch):
    return st[D_DINDEX] < 0 and not st[D_ERR] and dma_free(st, ch) >= 0


@register_jitable
def dma_idle(st, ch):
    return st[D_DINDEX] < 0 and not st[D_ERR] and st[D_HN] == 0 and st[D_SN] == 0 and dma_current(st, ch) < 0


@register_jitable
def dma_current(st, ch):
    """The channel whose read is offered this cycle (round robin from ``turn`` over the active ones), -1 if none."""
    n = st[D_CHANNELS]
    turn = st[D_TURN]
    for k in range(n):
        c = turn + k
        if c >= n:
            c -= n
        if ch[C_W * c + C_ACTIVE]:
            return c
    return -1


@register_jitable
def dma_cmd_offer(st, ch):
    """The channel offering a read on ``mem.cmd`` this cycle (before ``cmd.ready``), -1 if none."""
    if st[D_HN] >= st[D_OUTSTANDING]:
        return -1
    return dma_current(st, ch)


@register_jitable
def dma_rsp_ready(st, hdr, link_ready):
    """``mem.rsp.ready``: a header waits, the link is ready, and a last word has room for its status."""
    if st[D_HN] == 0 or not link_ready:
        return False
    return hdr[H_W * st[D_HHEAD] + H_LAST] == 0 or st[D_SN] < st[D_SDEPTH]


@register_jitable
def dma_check(st, table, index):
    """The error code of starting descriptor ``index`` (`hw.dma.DmaError`; a NOTIFY is only checked for being
    programmed)."""
    if index >= st[D_NDESC]:
        return _UNPROGRAMMED
    r = T_W * index
    if not table[r + T_VALID]:
        return _UNPROGRAMMED
    op = table[r + T_OP]
    if op == _NOTIFY:
        return _OK
    if op > _NOTIFY:
        return _BAD_OP
    if table[r + T_LEN] % st[D_LMOD] == 0:
        return _ZERO
    if table[r + T_DEV] >= st[D_NDEV]:
        return _BAD_DEVICE
    if table[r + T_SRC] % 4 or table[r + T_DST] % 4 or table[r + T_LEN] % 4:
        return _MISALIGNED
    return _OK


@register_jitable
def dma_program(st, table, index, src_addr, dst_device, dst_addr, length, op, tag, valid):
    r = T_W * index
    table[r + T_VALID] = 1 if valid else 0
    table[r + T_SRC] = src_addr
    table[r + T_DEV] = dst_device
    table[r + T_DST] = dst_addr
    table[r + T_LEN] = length
    table[r + T_OP] = op
    table[r + T_TAG] = tag


@register_jitable
def _push_status(st, sts, desc, tag, err):
    depth = st[D_SDEPTH]
    tail = st[D_SHEAD] + st[D_SN]
    if tail >= depth:
        tail -= depth
    sts[3 * tail] = desc
    sts[3 * tail + 1] = tag
    sts[3 * tail + 2] = err
    st[D_SN] += 1


@register_jitable
def dma_step(st, table, ch, hdr, sts, trigger, link_ready, status_ready, rsp_valid, cmd_ready):
    """One clock. ``trigger``: the descriptor offered (-1: none); the memory's ``rsp.valid`` and ``cmd.ready``.

    Returns `TAKEN` | `STATUS` (a status left: ``D_O_S*``) | `PACKET` (a packet left with the response word, which
    is popped: ``D_O_P*``) | `COMMAND` (a read of word ``D_O_CADDR`` was accepted).
    """
    free = dma_free(st, ch)
    take = trigger >= 0 and free >= 0 and st[D_DINDEX] < 0 and not st[D_ERR]
    n_s, n_h = st[D_SN], st[D_HN]
    sdepth = st[D_SDEPTH]
    flags = TAKEN if take else 0

    # Status output (FIFO contents from before this cycle).
    if n_s > 0 and status_ready:
        h = st[D_SHEAD]
        st[D_O_SDESC], st[D_O_STAG], st[D_O_SERR] = sts[3 * h], sts[3 * h + 1], sts[3 * h + 2]
        h += 1
        st[D_SHEAD] = 0 if h == sdepth else h
        st[D_SN] -= 1
        flags |= STATUS
    # Responses -> packets; the status of a descriptor's last word, else a pending error status, is queued.
    ok_status = False
    ok_desc = ok_tag = 0
    if rsp_valid and n_h > 0:
        h = st[D_HHEAD]
        r = H_W * h
        last = hdr[r + H_LAST]
        if (not last or n_s < sdepth) and link_ready:
            st[D_O_PDEV], st[D_O_PADDR], st[D_O_POP], st[D_O_PTAG] = hdr[r + H_DEV], hdr[r + H_ADDR], \
                hdr[r + H_OP], hdr[r + H_TAG]
            h += 1
            st[D_HHEAD] = 0 if h == st[D_OUTSTANDING] else h
            st[D_HN] -= 1
            flags |= PACKET
            if last:
                ok_status = True
                ok_desc, ok_tag = hdr[r + H_DESC], hdr[r + H_TAG]
    err_status = False
    err_desc = err_tag = err_code = 0
    if st[D_ERR] and not ok_status and n_s < sdepth:
        err_status = True
        err_desc, err_tag, err_code = st[D_ERR_DESC], st[D_ERR_TAG], st[D_ERR_CODE]
        st[D_ERR] = 0

    # Read issue (round robin over the channels active at the start of the cycle).
    new_header = False
    cur = dma_current(st, ch)
    if cur >= 0 and n_h < st[D_OUTSTANDING] and cmd_ready:
        c = C_W * cur
        last = ch[c + C_LEFT] == 1
        amask = st[D_AMASK]  # the channel's word addresses wrap, as the RTL registers do
        st[D_O_CADDR] = ch[c + C_SRC]
        new_header = True
        tail = st[D_HHEAD] + st[D_HN]
        if tail >= st[D_OUTSTANDING]:
            tail -= st[D_OUTSTANDING]
        r = H_W * tail
        hdr[r + H_DEV], hdr[r + H_ADDR], hdr[r + H_OP] = ch[c + C_DEV], ch[c + C_DST], ch[c + C_OP]
        hdr[r + H_TAG], hdr[r + H_DESC], hdr[r + H_LAST] = ch[c + C_TAG], ch[c + C_DESC], 1 if last else 0
        ch[c + C_SRC] = (ch[c + C_SRC] + 1) & amask
        ch[c + C_DST] = (ch[c + C_DST] + 1) & amask
        ch[c + C_LEFT] -= 1
        if last:
            ch[c + C_ACTIVE] = 0
        if st[D_INBURST] == st[D_BURST] - 1 or last:
            st[D_INBURST] = 0
            st[D_TURN] = 0 if cur == st[D_CHANNELS] - 1 else cur + 1
        else:
            st[D_INBURST] += 1
            st[D_TURN] = cur
        flags |= COMMAND

    # Dispatch of the descriptor read last cycle.
    index = st[D_DINDEX]
    if index >= 0:
        err = dma_check(st, table, index)
        r = T_W * index
        if err != _OK or table[r + T_OP] == _NOTIFY:
            st[D_ERR], st[D_ERR_DESC], st[D_ERR_CODE] = 1, index, err
            st[D_ERR_TAG] = table[r + T_TAG] if index < st[D_NDESC] else 0
        else:
            amask = st[D_AMASK]
            c = C_W * free
            ch[c + C_ACTIVE] = 1
            ch[c + C_SRC] = (table[r + T_SRC] >> 2) & amask
            ch[c + C_DST] = (table[r + T_DST] >> 2) & amask
            ch[c + C_LEFT] = (table[r + T_LEN] % st[D_LMOD]) >> 2
            ch[c + C_DEV], ch[c + C_OP], ch[c + C_TAG], ch[c + C_DESC] = table[r + T_DEV], table[r + T_OP] & 3, \
                table[r + T_TAG], index
        st[D_DINDEX] = -1
    if take:
        st[D_DINDEX] = trigger

    if new_header:
        st[D_HN] += 1
    if ok_status:
        _push_status(st, sts, ok_desc, ok_tag, _OK)
    if err_status:
        _push_status(st, sts, err_desc, err_tag, err_code)
    return flags


# The compiled run ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def dma_kernel(st, table, ch, hdr, sts, ms, q, pipe, rsp, words, tcyc, tdesc, link_seed, link_thr, status_seed,
               status_thr, max_cycles, pk, so):
    """Run the triggers ``(tcyc, tdesc)`` in order on the memory; packets into ``pk`` rows (cycle, device, addr,
    op, data, tag), statuses into ``so`` rows (cycle, desc, tag, error). Returns (packets, statuses, cycles), cycles
    -1 if the engine did not finish within ``max_cycles`` (-2: more packets than ``pk`` has rows)."""
    n = len(tcyc)
    i = 0
    npk = 0
    nso = 0
    for t in range(max_cycles):
        if i == n and dma_idle(st, ch):
            return npk, nso, t
        trig = tdesc[i] if i < n and tcyc[i] <= t else -1
        lr = link_thr == 0 or ready_nb(t, link_seed, link_thr)
        sr = status_thr == 0 or ready_nb(t, status_seed, status_thr)
        rv = mem_rsp_valid(ms)
        flags = dma_step(st, table, ch, hdr, sts, trig, lr, sr, rv, mem_cmd_ready(ms))
        if flags & TAKEN:
            i += 1
        if flags & STATUS:
            so[nso, 0], so[nso, 1], so[nso, 2], so[nso, 3] = t, st[D_O_SDESC], st[D_O_STAG], st[D_O_SERR]
            nso += 1
        if flags & PACKET:
            if npk == len(pk):
                return npk, nso, -2
            pk[npk, 0], pk[npk, 1], pk[npk, 2], pk[npk, 3] = t, st[D_O_PDEV], st[D_O_PADDR], st[D_O_POP]
            pk[npk, 4], pk[npk, 5] = mem_rsp_data(ms, rsp), st[D_O_PTAG]
            npk += 1
            mem_pop(ms)
        if flags & COMMAND:
            mem_push(ms, st[D_O_CADDR], 0, 0)
        mem_step(ms, q, pipe, rsp, words)
    return npk, nso, -1


@dataclass
class FastDmaRun:
    """What `run_dma_fast` returns: packet rows (cycle, device, addr, op, data, tag), status rows (cycle, desc, tag,
    error), both int64, and the run's cycles (`run_dma`'s definition)."""

    packets: np.ndarray
    statuses: np.ndarray
    cycles: int


MAX_FAST_MEMORY_LOG2 = 26  # the kernel keeps the memory as an array of 2**size_log2 words


def run_dma_fast(params: DmaParams, num_devices: int, descriptors: np.ndarray, mem, preload: np.ndarray,
                 triggers: np.ndarray, link_ready=None, status_ready=None, max_cycles: int | None = None) -> FastDmaRun:
    """`run_dma` compiled: ``descriptors`` a ``dma_descriptors`` table, ``mem`` the `hw.memory.MemoryParams`,
    ``preload`` a ``mem_words`` table, ``triggers`` a ``dma_triggers`` table; the readies are
    `sim.core.stimulus.ReadyPattern` or None (always ready). ``max_cycles`` default: 10 M plus the last trigger's
    cycle plus 1000 per packet and trigger."""
    for r in (link_ready, status_ready):
        if r is not None and not (hasattr(r, "seed") and hasattr(r, "threshold")):
            raise TypeError("run_dma_fast takes ReadyPattern readies (or None); use run_dma for other callables")
    if mem.size_log2 > MAX_FAST_MEMORY_LOG2:
        raise ValueError(f"run_dma_fast keeps at most 2**{MAX_FAST_MEMORY_LOG2} words (use run_dma)")
    st = np.array(dma_state(params, num_devices), np.int64)
    table = np.zeros(T_W * params.descriptors, np.int64).reshape(-1, T_W)
    idx = descriptors["index"].astype(np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= params.descriptors):
        raise ValueError(f"descriptor index out of range 0..{params.descriptors - 1}")
    table[idx, T_VALID] = 1
    for col, name in ((T_SRC, "src_addr"), (T_DEV, "dst_device"), (T_DST, "dst_addr"), (T_LEN, "length"),
                      (T_OP, "op"), (T_TAG, "dst_tag")):
        table[idx, col] = descriptors[name].astype(np.int64)
    tdesc = triggers["desc"].astype(np.int64)
    tcyc = triggers["cycle"].astype(np.int64)
    moves = (table[:, T_VALID] == 1) & (table[:, T_OP] < _NOTIFY)
    words_of = np.where(moves, (table[:, T_LEN] % (1 << params.length_bits)) >> 2, 0)
    inside = tdesc < params.descriptors
    max_packets = int(words_of[tdesc[inside]].sum())
    pk = np.zeros((max_packets, 6), np.int64)
    so = np.zeros((len(tdesc), 4), np.int64)
    ms = np.array(mem_state(mem), np.int64)
    words = np.zeros(1 << mem.size_log2, np.int64)
    words[preload["addr"].astype(np.int64) & ((1 << mem.size_log2) - 1)] = preload["data"].astype(np.int64)
    seeds = [(0, 0) if r is None else (int(r.seed), int(r.threshold)) for r in (link_ready, status_ready)]
    if max_cycles is None:  # as `run_dma`'s limit, plus room for long runs
        max_cycles = 10_000_000 + (int(tcyc.max()) if len(tcyc) else 0) + 1000 * (max_packets + len(tcyc))
    npk, nso, cycles = dma_kernel(
        st, table.reshape(-1), np.zeros(C_W * params.channels, np.int64), np.zeros(H_W * params.outstanding, np.int64),
        np.zeros(3 * params.status_depth, np.int64), ms, np.zeros(3 * mem.queue_depth, np.int64),
        np.zeros(2 * mem.rsp_depth, np.int64), np.zeros(mem.rsp_depth, np.int64), words, tcyc, tdesc,
        seeds[0][0], seeds[0][1], seeds[1][0], seeds[1][1], max_cycles, pk, so)
    if cycles == -2:
        raise RuntimeError("DMA model sent more packets than its triggers' descriptors have words")
    if cycles < 0:
        raise RuntimeError(f"DMA model did not finish within {max_cycles} cycles")
    return FastDmaRun(pk[:npk], so[:nso], int(cycles))


# The stepped class ---------------------------------------------------------------------------------------------

class DmaModel:
    """The engine's registers (the module's shared rules on Python lists); `cycle` advances them by one clock."""

    def __init__(self, params: DmaParams, num_devices: int) -> None:
        self.p = params
        self.num_devices = num_devices
        self._st = dma_state(params, num_devices)
        self._table = [0] * (T_W * params.descriptors)
        self._ch = [0] * (C_W * params.channels)
        self._hdr = [0] * (H_W * params.outstanding)
        self._sts = [0] * (3 * params.status_depth)

    def program(self, index: int, desc: Descriptor) -> None:
        if not 0 <= index < self.p.descriptors:
            raise ValueError(f"descriptor index {index} out of range 0..{self.p.descriptors - 1}")
        dma_program(self._st, self._table, index, desc.src_addr, desc.dst_device, desc.dst_addr, desc.length,
                    desc.op, desc.tag, desc.valid)

    # --- views of the registers ----------------------------------------------------------------------------------
    @property
    def channels(self) -> list[dict | None]:
        """Per channel: None if free, else its ``src``, ``dst`` (word addresses), ``left`` (words), ``dev``, ``op``,
        ``tag``, ``desc``."""
        ch = self._ch
        return [None if not ch[C_W * c + C_ACTIVE] else
                {"src": ch[C_W * c + C_SRC], "dst": ch[C_W * c + C_DST], "left": ch[C_W * c + C_LEFT],
                 "dev": ch[C_W * c + C_DEV], "op": ch[C_W * c + C_OP], "tag": ch[C_W * c + C_TAG],
                 "desc": ch[C_W * c + C_DESC]}
                for c in range(self.p.channels)]

    @property
    def headers(self) -> list[tuple[int, int, int, int, int, int]]:
        """The reads in flight ``(dst_device, addr, op, tag, desc, last)``, oldest first."""
        st, depth = self._st, self.p.outstanding
        return [tuple(self._hdr[H_W * ((st[D_HHEAD] + k) % depth) + j] for j in range(H_W))
                for k in range(st[D_HN])]

    @property
    def statuses(self) -> list[tuple[int, int, int]]:
        """The queued statuses ``(desc, tag, error)``, oldest first."""
        st, depth = self._st, self.p.status_depth
        return [tuple(self._sts[3 * ((st[D_SHEAD] + k) % depth) + j] for j in range(3)) for k in range(st[D_SN])]

    @property
    def turn(self) -> int:
        return self._st[D_TURN]

    @property
    def d_index(self) -> int | None:
        return None if self._st[D_DINDEX] < 0 else self._st[D_DINDEX]

    @property
    def err_pending(self) -> tuple[int, int, int] | None:
        st = self._st
        return (st[D_ERR_DESC], st[D_ERR_TAG], st[D_ERR_CODE]) if st[D_ERR] else None

    # --- one cycle -----------------------------------------------------------------------------------------------
    def trigger_ready(self) -> bool:
        return dma_trigger_ready(self._st, self._ch)

    def idle(self) -> bool:
        return dma_idle(self._st, self._ch)

    def cmd_offer(self) -> tuple[int, int, int] | None:
        """The read command on ``mem.cmd`` this cycle (before ``cmd.ready`` is known), or None."""
        c = dma_cmd_offer(self._st, self._ch)
        return None if c < 0 else (self._ch[C_W * c + C_SRC], 0, 0)

    def rsp_ready(self, link_ready: bool) -> bool:
        """``mem.rsp.ready`` this cycle."""
        return dma_rsp_ready(self._st, self._hdr, link_ready)

    def cycle(self, t: int, mem, trigger: int | None, link_ready: bool, status_ready: bool,
              run: DmaRun) -> bool:
        """Advance one cycle; ``trigger`` is the descriptor offered this cycle (or None). Returns whether the
        trigger was taken."""
        st = self._st
        rv = mem.rsp_valid()
        flags = dma_step(st, self._table, self._ch, self._hdr, self._sts, -1 if trigger is None else trigger,
                         link_ready, status_ready, rv, mem.cmd_ready())
        if flags & STATUS:
            run.statuses.append((t, st[D_O_SDESC], st[D_O_STAG], st[D_O_SERR]))
        if flags & PACKET:
            run.packets.append((t, st[D_O_PDEV], st[D_O_PADDR], st[D_O_POP], mem.rsp_data(), st[D_O_PTAG]))
            mem.pop_rsp()
        if flags & COMMAND:
            mem.push_cmd(st[D_O_CADDR], 0, 0)
        return bool(flags & TAKEN)


def run_dma(params: DmaParams, num_devices: int, descriptors: dict[int, Descriptor], memory: SimpleMemoryModel,
            triggers: Sequence[tuple[int, int]], link_ready: Callable[[int], bool] | None = None,
            status_ready: Callable[[int], bool] | None = None, max_cycles: int = 10_000_000) -> DmaRun:
    """Run triggers ``(available cycle, desc)`` in order through a stepped `DmaModel` on ``memory``.

    ``cycles``: the first cycle in which every trigger has been taken and the engine is idle."""
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

