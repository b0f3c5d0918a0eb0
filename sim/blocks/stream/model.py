"""Cycle model of the STREAM unit (`hw.stream.StreamUnit`) in front of `sim.rtl.gateware.SimpleMemory`.

One compiled kernel (`stream_kernel`, numba) steps cycles. Its state mirrors the RTL's registers one for one:
the program register and the FSM (idle, check, run), the read and write counters, the outstanding-element
count, the response FIFO, the holding register, stage 1 and the write register, the status FIFO; the memory is
`sim.blocks.memory.model`'s cycle-exact rules (``mem_*``). Every decision of a cycle is taken from the state
at its start, as the registers are, in the RTL's order: the write register claims the port before a read;
stage 1 moves when the write register is free or writing; a word leaves the response FIFO when it is a
``b[i]`` for the holding register or stage 1 is free.

The datapath is the model's own: float32 arithmetic in numba (IEEE, round to nearest even, no fused
multiply-add, no flush to zero) with NaN results made canonical, which is the RTL's `hw.fp` contract; the agreement
tests compare it with the numpy reference and the RTL bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from hw.memory import MemoryParams
from hw.stream import WORD_BYTES, StreamError, StreamOp, StreamParams
from sim.blocks.memory.model import (
    M_QDEPTH,
    M_QN,
    M_RDEPTH,
    mem_cmd_ready,
    mem_pop,
    mem_push,
    mem_rsp_data,
    mem_rsp_valid,
    mem_state,
    mem_step,
)
from sim.core.fast import ready_nb
from sim.core.stimulus import ReadyPattern

IDLE, CHECK, RUN = 0, 1, 2
_COPY, _SCALE, _ADD, _TRIAD = int(StreamOp.COPY), int(StreamOp.SCALE), int(StreamOp.ADD), int(StreamOp.TRIAD)
_OK, _BAD_OP, _ZERO, _MISALIGNED, _RANGE, _OVERLAP = (int(e) for e in StreamError)
_NAN = 0x7FC00000


@dataclass
class StreamRun:
    status: np.ndarray  # (programs, 4) int64: cycle the status left, tag, op, error
    cycles: int  # the first cycle with every program taken and the unit idle


@numba.njit(cache=True)
def _check(op, a, b, c, n, byte_bits):
    if op > _TRIAD:
        return _BAD_OP
    if n == 0:
        return _ZERO
    two = op == _ADD or op == _TRIAD
    if (a & 3) != 0 or (b & 3) != 0 or (two and (c & 3) != 0):
        return _MISALIGNED
    span = n * WORD_BYTES
    limit = 1 << byte_bits
    if a + span > limit or b + span > limit or (two and c + span > limit):
        return _RANGE
    if (a < b + span and b < a + span) or (two and a < c + span and c < a + span):
        return _OVERLAP
    return _OK


@numba.njit(cache=True)
def stream_kernel(cyc, ops, aa, bb, cc, nn, qq, tags, addr_bits, inflight, sdepth, ms, words, ready_seed,
                  ready_threshold, max_cycles, status):
    """Run the programs (columns of the stimulus table) to the end; fill ``status`` (one row per program) and
    return the number of cycles, or -1 after ``max_cycles`` (a bug)."""
    nprog = len(cyc)
    q = np.zeros(3 * ms[M_QDEPTH], dtype=np.int64)
    pipe = np.zeros(2 * ms[M_RDEPTH], dtype=np.int64)
    rsp = np.zeros(ms[M_RDEPTH], dtype=np.int64)
    ub = np.zeros(1, dtype=np.uint32)
    fb = ub.view(np.float32)
    rdepth = 2 * inflight
    rf = np.zeros(rdepth, dtype=np.int64)
    rf_head = rf_n = 0
    sf = np.zeros((sdepth, 3), dtype=np.int64)  # tag, op, error
    sf_head = sf_n = 0
    amask = (1 << addr_bits) - 1
    state = IDLE
    i = 0  # next program to take
    cur = -1
    emitted = 0
    op = two = 0
    qf = np.float32(0.0)
    rd_b = rd_c = wr_a = rd_left = wr_left = phase = outstanding = 0
    hold_valid = hold = s1_valid = s1_b = s1_y = wb_valid = wb_data = 0
    for t in range(max_cycles):
        if i == nprog and state == IDLE and sf_n == 0:
            while ms[M_QN] > 0:  # the image is read after the memory has served the last writes
                mem_step(ms, q, pipe, rsp, words)
            return t
        cmd_ready = mem_cmd_ready(ms)
        # status out (the FIFO's head, offered while the FIFO holds an entry)
        sf_pop = sf_n > 0 and ready_nb(t, ready_seed, ready_threshold)
        if sf_pop:
            status[emitted, 0] = t
            status[emitted, 1] = sf[sf_head, 0]
            status[emitted, 2] = sf[sf_head, 1]
            status[emitted, 3] = sf[sf_head, 2]
            emitted += 1
        rsp_in = mem_rsp_valid(ms)
        word_in = 0
        if rsp_in:
            word_in = mem_rsp_data(ms, rsp)
            mem_pop(ms)
        push = False
        push_err = 0
        next_state = state
        if state == IDLE:
            if i < nprog and cyc[i] <= t and sf_n < sdepth:
                cur = i
                i += 1
                op = ops[cur]
                two = 1 if (op == _ADD or op == _TRIAD) else 0
                ub[0] = qq[cur]
                qf = fb[0]
                next_state = CHECK
        elif state == CHECK:
            err = _check(op, aa[cur], bb[cur], cc[cur], nn[cur], addr_bits + 2)
            if err != _OK:
                push = True
                push_err = err
                next_state = IDLE
            else:
                rd_b = (bb[cur] >> 2) & amask
                rd_c = (cc[cur] >> 2) & amask
                wr_a = (aa[cur] >> 2) & amask
                rd_left = nn[cur]
                wr_left = nn[cur]
                phase = 0
                next_state = RUN
        # the datapath and the port (idle outside RUN: nothing is in flight there)
        write_fire = wb_valid == 1 and cmd_ready
        read_go = state == RUN and rd_left != 0 and wb_valid == 0 and (phase == 1 or outstanding != inflight)
        read_fire = read_go and cmd_ready
        if write_fire:
            mem_push(ms, wr_a, 1, wb_data)
        elif read_fire:
            mem_push(ms, rd_c if phase == 1 else rd_b, 0, 0)
        s1_move = s1_valid == 1 and (wb_valid == 0 or write_fire)
        s1_free = s1_valid == 0 or s1_move
        first_word = two == 1 and hold_valid == 0
        pop = rf_n > 0 and (first_word or s1_free)
        element_done = pop and not first_word
        word = rf[rf_head]
        if state == RUN and write_fire and wr_left == 1:
            push = True
            push_err = _OK
            next_state = IDLE
        # register updates (the order below only avoids reading a value already updated)
        if s1_move:
            if two == 1:
                ub[0] = s1_b
                x = fb[0]
                ub[0] = s1_y
                fb[0] = x + fb[0]
                total = ub[0]
                if fb[0] != fb[0]:
                    total = _NAN
                wb_data = total
            elif op == _SCALE:
                wb_data = s1_y
            else:
                wb_data = s1_b
            wb_valid = 1
        elif write_fire:
            wb_valid = 0
        if element_done:
            s1_valid = 1
            s1_b = hold if two == 1 else word
            if op == _SCALE or op == _TRIAD:
                ub[0] = word
                fb[0] = qf * fb[0]
                prod = ub[0]
                if fb[0] != fb[0]:
                    prod = _NAN
                s1_y = prod
            else:
                s1_y = word
        elif s1_move:
            s1_valid = 0
        if pop and first_word:
            hold_valid = 1
            hold = word
        elif element_done:
            hold_valid = 0
        first_read = read_fire and phase == 0
        outstanding += (1 if first_read else 0) - (1 if element_done else 0)
        if read_fire:
            if phase == 1:
                rd_c = (rd_c + 1) & amask
                phase = 0
                rd_left -= 1
            elif two == 1:
                rd_b = (rd_b + 1) & amask
                phase = 1
            else:
                rd_b = (rd_b + 1) & amask
                rd_left -= 1
        if write_fire:
            wr_a = (wr_a + 1) & amask
            wr_left -= 1
        # FIFOs: pop, then push (a pushed entry is visible from the next cycle)
        if pop:
            rf_head = (rf_head + 1) % rdepth
            rf_n -= 1
        if rsp_in:
            rf[(rf_head + rf_n) % rdepth] = word_in
            rf_n += 1
        if sf_pop:
            sf_head = (sf_head + 1) % sdepth
            sf_n -= 1
        if push:
            slot = (sf_head + sf_n) % sdepth
            sf[slot, 0] = tags[cur]
            sf[slot, 1] = op
            sf[slot, 2] = push_err
            sf_n += 1
        state = next_state
        mem_step(ms, q, pipe, rsp, words)
    return -1


def run_stream(p: StreamParams, mem: MemoryParams, programs: np.ndarray, image: np.ndarray,
               ready: ReadyPattern, max_cycles: int | None = None) -> tuple[StreamRun, np.ndarray]:
    """Run ``programs`` (`sim.blocks.stream.reference.PROGRAM_DTYPE`) on a memory preloaded with ``image``
    (uint32 words from address 0); return the run and the memory's final contents (``2**size_log2`` words)."""
    words = np.zeros(1 << mem.size_log2, dtype=np.uint32)
    words[:len(image)] = image
    ms = np.array(mem_state(mem), dtype=np.int64)
    status = np.zeros((len(programs), 4), dtype=np.int64)
    if max_cycles is None:
        work = int(np.sum(programs["n"].astype(np.float64) * 3)) if len(programs) else 0
        last = int(programs["cycle"][-1]) if len(programs) else 0
        max_cycles = 10_000 + last + work * (mem.interval + 1) * 4 + 64 * len(programs)
    cols = [np.ascontiguousarray(programs[f]).astype(np.int64) for f in ("cycle", "op", "a", "b", "c", "n", "q",
                                                                         "tag")]
    cycles = stream_kernel(*cols, p.addr_bits, p.inflight, p.status_depth, ms, words, ready.seed, ready.threshold,
                           max_cycles, status)
    if cycles < 0:
        raise RuntimeError(f"the STREAM unit model did not finish in {max_cycles} cycles")  # pragma: no cover
    return StreamRun(status=status, cycles=int(cycles)), words
