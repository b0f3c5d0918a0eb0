"""Models of the KV swap controller (`hw.kv_swap.KvSwapController`) and of its host-link stand-in.

* `KvSwapModel`: cycle-exact, stepped one cycle at a time; it mirrors the RTL's registers (request tables, run
  FIFOs, engine segment/burst registers, header FIFO, status FIFO, pending error/abort registers). Every
  decision uses the state at the start of the cycle; FIFO pushes become visible the next cycle.
* `HostLinkModel`: cycle-exact model of `sim.blocks.kv_swap.rtl.HostLink` + `hw.memory.SimpleMemory`: the first
  command of each burst waits ``overhead_cycles`` cycles of being offered before the memory sees it.
* `swap_cycles`: a transaction-level estimate for serving simulators (no cycle stepping), see its docstring.

Port objects given to the model have ``offer(addr, write, data, burst) -> bool`` (the command is valid this
cycle; returns whether it was accepted), ``rsp_valid``, ``rsp_data``, ``pop_rsp`` and ``step``: use
`SimpleMemoryModel` for the device side and `HostLinkModel` for the host side; the caller steps them after the
controller each cycle.

One statement of the rules, two ways to run it. The controller's rules are `kv_cycle` (one clock) over a state
vector (``K_*`` slots) and four rings (request table, run FIFOs, header FIFO, status FIFO); the host link's are
`link_offer` / `link_step` over a link vector (``L_*``); the memory's are `sim.blocks.memory.model`'s ``mem_*``.
All are `numba.extending.register_jitable`: plain Python when `KvSwapModel.cycle` and `HostLinkModel` call them on
lists (composed users step those classes with their own port objects), compiled when `run_kv_swap` replays a
whole trace in the `_replay` kernel (controller, both memories and the link, one loop on arrays; with a
`sim.core.stimulus.ReadyPattern` or no status backpressure, ports of exactly these two classes and storage that
fits `DENSE_WORDS`; otherwise it steps the classes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numba
import numpy as np
from numba.extending import register_jitable

from hw.kv_swap import BAD_ABORT_BITS, KvSwapParams, SwapDir, SwapError
from hw.memory import MemoryParams
from sim.blocks.memory.model import (
    SimpleMemoryModel,
    mem_cmd_ready,
    mem_idle,
    mem_pop,
    mem_push,
    mem_rsp_data,
    mem_rsp_valid,
    mem_state,
    mem_step,
)
from sim.core.fast import ready_nb
from sim.core.stimulus import ReadyPattern

DENSE_WORDS = 1 << 22  # `run_kv_swap` compiles the replay when each memory's storage (2**size_log2 words) fits


@dataclass(frozen=True)
class Run:
    """One run record: ``count`` blocks from ``src`` to ``dst``; ``last`` closes the request."""

    tag: int
    direction: int
    src: int
    dst: int
    count: int
    last: bool


# --- the host link's rules ------------------------------------------------------------------------------------
# Link vector: the per-burst overhead, the cycles of it served, whether the current burst's first command has
# paid it, and this cycle's events (the first command was refused for the overhead / a command was accepted).
L_OVERHEAD, L_COUNT, L_CHARGED, L_TICK, L_FIRE = range(5)
L_N = 5


def link_state(overhead_cycles: int) -> list[int]:
    ls = [0] * L_N
    ls[L_OVERHEAD] = overhead_cycles
    return ls


@register_jitable
def link_offer(ls, ms, addr, write, data, burst):
    """A command offered through the link this cycle (``burst``: words, on a burst's first command, else 0);
    returns whether the memory took it. A link with overhead 0 is the memory's port itself."""
    if ls[L_OVERHEAD] != 0 and burst != 0 and ls[L_CHARGED] == 0:
        ls[L_TICK] = 1
        return False
    if mem_cmd_ready(ms):
        mem_push(ms, addr, write, data)
        ls[L_FIRE] = 1
        return True
    return False


@register_jitable
def link_step(ls):
    """End of the cycle (before the memory's `mem_step`)."""
    if ls[L_TICK]:
        if ls[L_COUNT] == ls[L_OVERHEAD] - 1:
            ls[L_CHARGED] = 1
            ls[L_COUNT] = 0
        else:
            ls[L_COUNT] += 1
    if ls[L_FIRE]:
        ls[L_CHARGED] = 0
    ls[L_TICK] = 0
    ls[L_FIRE] = 0


class HostLinkModel(SimpleMemoryModel):
    """The host link (per-burst overhead gate) in front of a `SimpleMemoryModel` (the host memory)."""

    def __init__(self, params: MemoryParams, overhead_cycles: int, storage: dict[int, int] | None = None) -> None:
        super().__init__(params, storage)
        self._ls = link_state(overhead_cycles)

    @property
    def overhead(self) -> int:
        return self._ls[L_OVERHEAD]

    def offer(self, addr: int, write: int, data: int, burst: int = 0) -> bool:
        return link_offer(self._ls, self._ms, addr, write, data, burst)

    def step(self) -> None:
        link_step(self._ls)
        super().step()


@dataclass
class SwapRun:
    """What a replay produced: statuses ``(cycle, tag, error)``, accepted device commands
    ``(cycle, addr, write, data)`` and host commands ``(cycle, addr, write, data, burst)``."""

    statuses: list[tuple[int, int, int]] = field(default_factory=list)
    dev_cmds: list[tuple[int, int, int, int]] = field(default_factory=list)
    host_cmds: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    cycles: int = 0
    bad_aborts: int = 0
    run_accepts: list[int] = field(default_factory=list)  # cycle each run was accepted (model only)


# --- the controller's rules -----------------------------------------------------------------------------------
# State vector: parameters, then registers. Rings (flat, one row per entry):
#   ``slots``  request tables, row (dir * queue_depth + slot): valid, tag, complete, dead, nruns;
#   ``rf``     run FIFOs, row (dir * run_depth + i): src, dst, count, last;
#   ``hd``     header FIFO (one per read in flight, ``outstanding`` rows): dst, burst, last, tag, dir;
#   ``sf``     status FIFO (``status_depth`` rows): tag, error.
(K_QD, K_RD, K_OUT, K_SD, K_MB, K_SH, K_DEVB, K_HOSTB, K_BADMAX,
 K_HEAD, K_TAIL, K_COUNT, K_RHEAD, K_RN,  # two each (per direction)
 ) = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 15, 17)
(K_HHEAD, K_HN, K_SHEAD, K_SN, K_ACTIVE, K_EDIR, K_EDEAD, K_ETAG, K_ERUNS, K_SEG_SRC, K_SEG_DST, K_SEG_LEFT,
 K_SEG_LAST, K_BLEFT, K_BLEN, K_BSRC, K_BDST, K_BFIRST, K_BFINAL, K_LASTDIR, K_INREQ, K_CURDIR, K_CURSLOT,
 K_CURTAG, K_CURERR, K_CURNRUNS, K_ERRP, K_ERRP_TAG, K_ERRP_ERR, K_ABP, K_ABP_TAG, K_ABORT_ERR,
 K_BAD_ABORTS) = range(19, 52)
K_N = 52
S_W, R_W, H_W, F_W = 5, 4, 5, 2  # row widths of slots, rf, hd, sf
# Per-cycle events `kv_cycle` reports: a status left, the device / host command accepted.
E_ST, E_ST_TAG, E_ST_ERR, E_DEV, E_DEV_ADDR, E_DEV_WRITE, E_DEV_DATA, E_DEV_BURST = range(8)
E_HOST, E_HOST_ADDR, E_HOST_WRITE, E_HOST_DATA, E_HOST_BURST = range(8, 13)
E_N = 13
_OUT, _IN = int(SwapDir.OUT), int(SwapDir.IN)
_OK, _ABORTED, _ZERO, _RANGE, _QFULL = (int(SwapError.OK), int(SwapError.ABORTED), int(SwapError.ZERO_COUNT),
                                         int(SwapError.OUT_OF_RANGE), int(SwapError.QUEUE_FULL))


def kv_state(p: KvSwapParams) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    """Reset state: ``(ks, slots, rf, hd, sf)`` as lists (``np.array(..., np.int64)`` of each for a kernel)."""
    ks = [0] * K_N
    ks[K_QD], ks[K_RD], ks[K_OUT], ks[K_SD] = p.queue_depth, p.run_depth, p.outstanding, p.status_depth
    ks[K_MB], ks[K_SH], ks[K_DEVB], ks[K_HOSTB] = p.max_burst_blocks, p.word_shift, p.dev_blocks, p.host_blocks
    ks[K_BADMAX] = (1 << BAD_ABORT_BITS) - 1
    return ks, [0] * (2 * p.queue_depth * S_W), [0] * (2 * p.run_depth * R_W), [0] * (p.outstanding * H_W), \
        [0] * (p.status_depth * F_W)


@register_jitable
def kv_idle(ks):
    return (ks[K_INREQ] == 0 and ks[K_COUNT] == 0 and ks[K_COUNT + 1] == 0 and ks[K_ACTIVE] == 0
            and ks[K_HN] == 0 and ks[K_SN] == 0 and ks[K_ERRP] == 0 and ks[K_ABP] == 0)


@register_jitable
def _kv_finish(ks, slots):
    """The engine is done with the request at its direction's head."""
    d = ks[K_EDIR]
    qd = ks[K_QD]
    slots[(d * qd + ks[K_HEAD + d]) * S_W] = 0
    h = ks[K_HEAD + d] + 1
    ks[K_HEAD + d] = 0 if h == qd else h
    ks[K_COUNT + d] -= 1
    ks[K_ACTIVE] = 0


@register_jitable
def _kv_status_push(ks, sf, tag, err):
    sd = ks[K_SD]
    tail = ks[K_SHEAD] + ks[K_SN]
    if tail >= sd:
        tail -= sd
    sf[tail * F_W] = tag
    sf[tail * F_W + 1] = err
    ks[K_SN] += 1


@register_jitable
def kv_cycle(ks, slots, rf, hd, sf, dls, dms, drsp, hls, hms, hrsp, run_valid, r_tag, r_dir, r_src, r_dst,
             r_count, r_last, abort_valid, abort_tag, status_ready, ev):
    """One clock of the controller with a run (``run_valid``: ``r_*``) and an abort offered; the ports are the
    device memory (``d*``) and the host link (``h*``: link vector, memory state, response ring). Fills ``ev``
    (``E_*``) and returns ``run taken | abort taken << 1``. The caller steps the ports afterwards."""
    qd, rd, sd = ks[K_QD], ks[K_RD], ks[K_SD]
    n_statuses, n_headers = ks[K_SN], ks[K_HN]
    n_runs0, n_runs1 = ks[K_RN], ks[K_RN + 1]
    count0_0, count0_1 = ks[K_COUNT], ks[K_COUNT + 1]
    err_pending0, abort_pending0 = ks[K_ERRP] != 0, ks[K_ABP] != 0
    for k in range(E_N):
        ev[k] = 0
    push_tag = push_err = -1

    # Status output.
    if n_statuses and status_ready:
        h = ks[K_SHEAD]
        ev[E_ST], ev[E_ST_TAG], ev[E_ST_ERR] = 1, sf[h * F_W], sf[h * F_W + 1]
        h += 1
        ks[K_SHEAD] = 0 if h == sd else h
        ks[K_SN] -= 1

    # Write side.
    wrote_port = -1
    push_done = False
    if n_headers:
        h = ks[K_HHEAD] * H_W
        dst, burst, last, tag, hdir = hd[h], hd[h + 1], hd[h + 2], hd[h + 3], hd[h + 4]
        wr = 0 if hdir == _IN else 1  # an IN burst reads the host and writes the device
        rms = hms if wr == 0 else dms
        rrsp = hrsp if wr == 0 else drsp
        if mem_rsp_valid(rms) and (last == 0 or n_statuses < sd):
            data = mem_rsp_data(rms, rrsp)
            wrote_port = wr
            took = link_offer(dls, dms, dst, 1, data, burst) if wr == 0 else link_offer(hls, hms, dst, 1, data, burst)
            if took:
                mem_pop(rms)
                hh = ks[K_HHEAD] + 1
                ks[K_HHEAD] = 0 if hh == ks[K_OUT] else hh
                ks[K_HN] -= 1
                e = E_DEV if wr == 0 else E_HOST
                ev[e], ev[e + 1], ev[e + 2], ev[e + 3], ev[e + 4] = 1, dst, 1, data, burst
                if last:
                    push_done = True
                    push_tag, push_err = tag, _OK
    push_errp = ks[K_ERRP] != 0 and not push_done and n_statuses < sd
    if push_errp:
        push_tag, push_err = ks[K_ERRP_TAG], ks[K_ERRP_ERR]
        ks[K_ERRP] = 0
    if ks[K_ABP] != 0 and not push_done and not push_errp and n_statuses < sd:
        push_tag, push_err = ks[K_ABP_TAG], _ABORTED
        ks[K_ABP] = 0

    # Engine start decision (needed by the abort search).
    run_in = count0_1 != 0 and slots[(qd + ks[K_HEAD + 1]) * S_W + 2] != 0
    run_out = count0_0 != 0 and slots[ks[K_HEAD] * S_W + 2] != 0
    pick = _IN if run_in else _OUT
    start = ks[K_ACTIVE] == 0 and (run_in or run_out) and (n_headers == 0 or pick == ks[K_LASTDIR])

    # Aborts (start-of-cycle table).
    abort_taken = abort_valid != 0 and not abort_pending0
    if abort_taken:
        hit = -1
        for d in (_IN, _OUT):
            for s in range(qd):
                row = (d * qd + s) * S_W
                owned = s == ks[K_HEAD + d] and ((ks[K_ACTIVE] != 0 and ks[K_EDIR] == d) or (start and pick == d))
                if slots[row] != 0 and slots[row + 2] != 0 and slots[row + 3] == 0 and not owned \
                        and slots[row + 1] == abort_tag:
                    hit = row
                    break
            if hit >= 0:
                break
        if hit < 0:
            ks[K_ABORT_ERR] = 1
            ks[K_BAD_ABORTS] = min(ks[K_BAD_ABORTS] + 1, ks[K_BADMAX])
        else:
            slots[hit + 3] = 1
            ks[K_ABP], ks[K_ABP_TAG] = 1, abort_tag

    # Engine.
    new_header = False
    nh_dst = nh_burst = nh_last = nh_tag = nh_dir = 0
    if start:
        row = (pick * qd + ks[K_HEAD + pick]) * S_W
        ks[K_ACTIVE], ks[K_EDIR], ks[K_LASTDIR] = 1, pick, pick
        ks[K_EDEAD], ks[K_ETAG], ks[K_ERUNS] = slots[row + 3], slots[row + 1], slots[row + 4]
        ks[K_SEG_SRC] = ks[K_SEG_DST] = ks[K_SEG_LEFT] = ks[K_SEG_LAST] = 0
        ks[K_BLEFT] = 0
    elif ks[K_ACTIVE] != 0:
        d = ks[K_EDIR]
        n_runs_d = n_runs0 if d == 0 else n_runs1
        fh = (d * rd + ks[K_RHEAD + d]) * R_W  # the run FIFO's head row
        if ks[K_EDEAD] != 0:
            if n_runs_d:
                _kv_run_pop(ks, d)
                ks[K_ERUNS] -= 1
                if ks[K_ERUNS] == 0:
                    _kv_finish(ks, slots)
        elif ks[K_BLEFT]:
            if n_headers < ks[K_OUT]:
                if d == wrote_port:  # the RTL never reads and writes one port in a cycle
                    raise AssertionError("a port was read and written in one cycle")
                burst = ks[K_BLEN] if ks[K_BFIRST] != 0 else 0
                took = link_offer(dls, dms, ks[K_BSRC], 0, 0, burst) if d == _OUT else \
                    link_offer(hls, hms, ks[K_BSRC], 0, 0, burst)
                if took:
                    last = ks[K_BFINAL] != 0 and ks[K_BLEFT] == 1
                    new_header = True
                    nh_dst, nh_burst, nh_last, nh_tag, nh_dir = ks[K_BDST], burst, int(last), ks[K_ETAG], d
                    e = E_DEV if d == _OUT else E_HOST
                    ev[e], ev[e + 1], ev[e + 2], ev[e + 3], ev[e + 4] = 1, ks[K_BSRC], 0, 0, burst
                    ks[K_BSRC] += 1
                    ks[K_BDST] += 1
                    ks[K_BLEFT] -= 1
                    ks[K_BFIRST] = 0
                    if last:
                        _kv_finish(ks, slots)
        else:
            src, dst, left, seg_last = ks[K_SEG_SRC], ks[K_SEG_DST], ks[K_SEG_LEFT], ks[K_SEG_LAST]
            mb = ks[K_MB]
            if left == 0:
                if n_runs_d:
                    ks[K_SEG_SRC], ks[K_SEG_DST], ks[K_SEG_LEFT], ks[K_SEG_LAST] = rf[fh], rf[fh + 1], rf[fh + 2], \
                        rf[fh + 3]
                    _kv_run_pop(ks, d)
            elif left < mb and seg_last == 0 and n_runs_d and rf[fh] == src + left and rf[fh + 1] == dst + left:
                ks[K_SEG_LEFT], ks[K_SEG_LAST] = left + rf[fh + 2], rf[fh + 3]
                _kv_run_pop(ks, d)
            else:
                n = min(left, mb)
                sh = ks[K_SH]
                ks[K_BLEFT] = ks[K_BLEN] = n << sh
                ks[K_BSRC], ks[K_BDST] = src << sh, dst << sh
                ks[K_BFIRST], ks[K_BFINAL] = 1, int(seg_last != 0 and left <= mb)
                ks[K_SEG_SRC], ks[K_SEG_DST], ks[K_SEG_LEFT] = src + n, dst + n, left - n

    # Ingest.
    run_taken = False
    if run_valid:
        in_req = ks[K_INREQ] != 0
        d = ks[K_CURDIR] if in_req else r_dir
        store = not in_req or ks[K_CURNRUNS] < rd
        room = (n_runs0 if d == 0 else n_runs1) < rd
        run_taken = not err_pending0 and (in_req or (count0_0 if d == 0 else count0_1) < qd) and (not store or room)
        if run_taken:
            src_pool, dst_pool = (ks[K_DEVB], ks[K_HOSTB]) if d == _OUT else (ks[K_HOSTB], ks[K_DEVB])
            err = _OK
            if r_count == 0:
                err = _ZERO
            elif r_src + r_count > src_pool or r_dst + r_count > dst_pool:
                err = _RANGE
            if err == _OK and not store:
                err = _QFULL
            first_err = ks[K_CURERR] if in_req and ks[K_CURERR] != _OK else err
            nr_new = (ks[K_CURNRUNS] if in_req else 0) + int(store)
            if store:
                tail = ks[K_RHEAD + d] + ks[K_RN + d]
                if tail >= rd:
                    tail -= rd
                row = (d * rd + tail) * R_W
                rf[row], rf[row + 1], rf[row + 2], rf[row + 3] = r_src, r_dst, r_count, int(r_last != 0)
                ks[K_RN + d] += 1
            if not in_req:
                slot = ks[K_TAIL + d]
                row = (d * qd + slot) * S_W
                slots[row], slots[row + 1], slots[row + 2], slots[row + 3], slots[row + 4] = 1, r_tag, 0, 0, 0
                ks[K_TAIL + d] = 0 if slot + 1 == qd else slot + 1
                ks[K_COUNT + d] += 1
                ks[K_CURDIR], ks[K_CURSLOT], ks[K_CURTAG] = d, slot, r_tag
            row = (d * qd + ks[K_CURSLOT]) * S_W
            slots[row + 4] = nr_new
            if r_last:
                slots[row + 2], slots[row + 3] = 1, int(first_err != _OK)
                ks[K_INREQ] = 0
                if first_err != _OK:
                    ks[K_ERRP], ks[K_ERRP_TAG], ks[K_ERRP_ERR] = 1, ks[K_CURTAG], first_err
            else:
                ks[K_INREQ], ks[K_CURERR], ks[K_CURNRUNS] = 1, first_err, nr_new

    if new_header:
        out = ks[K_OUT]
        tail = ks[K_HHEAD] + ks[K_HN]
        if tail >= out:
            tail -= out
        row = tail * H_W
        hd[row], hd[row + 1], hd[row + 2], hd[row + 3], hd[row + 4] = nh_dst, nh_burst, nh_last, nh_tag, nh_dir
        ks[K_HN] += 1
    if push_tag >= 0:
        _kv_status_push(ks, sf, push_tag, push_err)
    return int(run_taken) | (int(abort_taken) << 1)


@register_jitable
def _kv_run_pop(ks, d):
    h = ks[K_RHEAD + d] + 1
    ks[K_RHEAD + d] = 0 if h == ks[K_RD] else h
    ks[K_RN + d] -= 1


class KvSwapModel:
    """Cycle-exact model of `hw.kv_swap.KvSwapController` (see the RTL's docstring for the contract): `kv_cycle`
    on lists, with the port objects' own state (a `SimpleMemoryModel` or a `HostLinkModel` on each side)."""

    def __init__(self, params: KvSwapParams) -> None:
        self.p = params
        self._ks, self._slots, self._rf, self._hd, self._sf = kv_state(params)
        self._ev = [0] * E_N
        self._plain = link_state(0)  # the link vector of a port without a link (overhead 0: the memory itself)

    @property
    def bad_aborts(self) -> int:
        return self._ks[K_BAD_ABORTS]

    @property
    def abort_err(self) -> bool:
        return bool(self._ks[K_ABORT_ERR])

    def idle(self) -> bool:
        return kv_idle(self._ks)

    def cycle(self, t: int, dev, host, run: Run | None, abort: int | None, status_ready: bool,
              out: SwapRun) -> tuple[bool, bool]:
        """Advance one cycle with ``run``/``abort`` offered (or None); return whether each was taken."""
        ev = self._ev
        dls, hls = getattr(dev, "_ls", self._plain), getattr(host, "_ls", self._plain)
        if run is None:
            taken = kv_cycle(self._ks, self._slots, self._rf, self._hd, self._sf, dls, dev._ms, dev._rsp, hls,
                             host._ms, host._rsp, 0, 0, 0, 0, 0, 0, 0, abort is not None,
                             0 if abort is None else abort, status_ready, ev)
        else:
            taken = kv_cycle(self._ks, self._slots, self._rf, self._hd, self._sf, dls, dev._ms, dev._rsp, hls,
                             host._ms, host._rsp, 1, run.tag, run.direction, run.src, run.dst, run.count,
                             int(run.last), abort is not None, 0 if abort is None else abort, status_ready, ev)
        if ev[E_ST]:
            out.statuses.append((t, ev[E_ST_TAG], ev[E_ST_ERR]))
        if ev[E_DEV]:
            out.dev_cmds.append((t, ev[E_DEV_ADDR], ev[E_DEV_WRITE], ev[E_DEV_DATA]))
        if ev[E_HOST]:
            out.host_cmds.append((t, ev[E_HOST_ADDR], ev[E_HOST_WRITE], ev[E_HOST_DATA], ev[E_HOST_BURST]))
        return bool(taken & 1), bool(taken & 2)


# --- the compiled replay --------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _replay(ks, slots, rf, hd, sf, dls, dms, dq, dpipe, drsp, dwords, hls, hms, hq, hpipe, hrsp, hwords,
            runs, aborts, ready_mode, ready_seed, ready_threshold, max_cycles, drain, st_out, dev_out, host_out,
            accepts):
    """`run_kv_swap`'s loop, compiled: runs (rows: cycle, tag, dir, src, dst, count, last) and aborts (rows:
    cycle, tag) offered in order from their cycles, both ports stepped after the controller each cycle; with
    ``drain``, the memories are stepped on until idle once the controller is. Logs go to the ``*_out`` rows;
    returns ``(cycles or -1 if not done within max_cycles, statuses, device commands, host commands)``."""
    ev = np.zeros(E_N, dtype=np.int64)
    n_runs, n_aborts = runs.shape[0], aborts.shape[0]
    i = j = n_st = n_dev = n_host = 0
    for t in range(max_cycles):
        if i == n_runs and j == n_aborts and kv_idle(ks):
            if drain:
                while not (mem_idle(dms) and mem_idle(hms)):
                    link_step(dls)
                    mem_step(dms, dq, dpipe, drsp, dwords)
                    link_step(hls)
                    mem_step(hms, hq, hpipe, hrsp, hwords)
            return t, n_st, n_dev, n_host
        rv = i < n_runs and runs[i, 0] <= t
        av = j < n_aborts and aborts[j, 0] <= t
        ready = True
        if ready_mode == 1:
            ready = ready_nb(t, ready_seed, ready_threshold)
        if rv:
            taken = kv_cycle(ks, slots, rf, hd, sf, dls, dms, drsp, hls, hms, hrsp, True, runs[i, 1], runs[i, 2],
                             runs[i, 3], runs[i, 4], runs[i, 5], runs[i, 6], av, aborts[j, 1] if av else 0, ready,
                             ev)
        else:
            taken = kv_cycle(ks, slots, rf, hd, sf, dls, dms, drsp, hls, hms, hrsp, False, 0, 0, 0, 0, 0, 0, av,
                             aborts[j, 1] if av else 0, ready, ev)
        if ev[E_ST]:
            st_out[n_st, 0], st_out[n_st, 1], st_out[n_st, 2] = t, ev[E_ST_TAG], ev[E_ST_ERR]
            n_st += 1
        if ev[E_DEV]:
            dev_out[n_dev, 0] = t
            for k in range(4):
                dev_out[n_dev, 1 + k] = ev[E_DEV_ADDR + k]
            n_dev += 1
        if ev[E_HOST]:
            host_out[n_host, 0] = t
            for k in range(4):
                host_out[n_host, 1 + k] = ev[E_HOST_ADDR + k]
            n_host += 1
        if taken & 1:
            accepts[i] = t
            i += 1
        if taken & 2:
            j += 1
        link_step(dls)
        mem_step(dms, dq, dpipe, drsp, dwords)
        link_step(hls)
        mem_step(hms, hq, hpipe, hrsp, hwords)
    return -1, n_st, n_dev, n_host


@dataclass
class ReplayArrays:
    """The compiled replay's result: logs as int64 rows, final storages, cycles (see `replay_arrays`)."""

    statuses: np.ndarray  # cycle, tag, error
    dev_cmds: np.ndarray  # cycle, addr, write, data, burst
    host_cmds: np.ndarray  # cycle, addr, write, data, burst
    accepts: np.ndarray  # cycle each run was taken
    cycles: int
    bad_aborts: int


class _Port:
    """A memory (and its link) as arrays for `_replay`: from reset, or from a port object's state (``obj``)."""

    def __init__(self, params: MemoryParams, overhead: int, words: np.ndarray, obj=None) -> None:
        if obj is None:
            ls, ms = link_state(overhead), mem_state(params)
            q, pipe, rsp = [0] * (3 * params.queue_depth), [0] * (2 * params.rsp_depth), [0] * params.rsp_depth
        else:
            ls, ms, q, pipe, rsp = getattr(obj, "_ls", link_state(0)), obj._ms, obj._q, obj._pipe, obj._rsp
        self.ls, self.ms, self.q, self.pipe, self.rsp = (np.array(x, dtype=np.int64) for x in (ls, ms, q, pipe, rsp))
        self.words = words

    def args(self) -> tuple:
        return self.ls, self.ms, self.q, self.pipe, self.rsp, self.words

    def store(self, obj) -> None:
        """Write the state back into a `SimpleMemoryModel` / `HostLinkModel` (storage included)."""
        if hasattr(obj, "_ls"):
            obj._ls[:] = self.ls.tolist()
        obj._ms[:], obj._q[:], obj._pipe[:], obj._rsp[:] = (a.tolist() for a in (self.ms, self.q, self.pipe, self.rsp))
        obj.mem.update(enumerate(self.words.tolist()))


def replay_arrays(p: KvSwapParams, dev_mem: MemoryParams, host_mem: MemoryParams, overhead: int,
                  dev_words: np.ndarray, host_words: np.ndarray, runs: np.ndarray, aborts: np.ndarray,
                  status_ready: ReadyPattern | None = None, *, drain: bool = True, max_cycles: int = 10_000_000,
                  ports: tuple[_Port, _Port] | None = None) -> ReplayArrays:
    """The compiled replay from reset on arrays: ``dev_words``/``host_words`` are the memories' storages
    (``2**size_log2`` int64 words each, updated in place), ``runs`` rows ``(cycle, tag, dir, src, dst, count,
    last)``, ``aborts`` rows ``(cycle, tag)``; ``drain``: step the memories until idle after the last status;
    ``ports``: start the memories from these states instead (`run_kv_swap`; ``overhead`` is then theirs)."""
    dev, host = ports or (_Port(dev_mem, 0, dev_words), _Port(host_mem, overhead, host_words))
    ks, slots, rf, hd, sf = (np.array(x, dtype=np.int64) for x in kv_state(p))
    runs = np.ascontiguousarray(runs, dtype=np.int64).reshape(-1, 7)
    aborts = np.ascontiguousarray(aborts, dtype=np.int64).reshape(-1, 2)
    words = int(runs[:, 5].sum() if len(runs) else 0) * p.block_words  # each word: one command on each side
    st_out = np.zeros((len(runs) + len(aborts), 3), dtype=np.int64)
    dev_out, host_out = np.zeros((words, 5), dtype=np.int64), np.zeros((words, 5), dtype=np.int64)
    accepts = np.zeros(len(runs), dtype=np.int64)
    mode, seed, threshold = (0, 0, 0) if status_ready is None else (1, status_ready.seed, status_ready.threshold)
    cycles, n_st, n_dev, n_host = _replay(ks, slots, rf, hd, sf, *dev.args(), *host.args(), runs, aborts, mode,
                                          seed, threshold, max_cycles, drain, st_out, dev_out, host_out, accepts)
    if cycles < 0:
        raise RuntimeError(f"KV swap model did not finish within {max_cycles} cycles")
    return ReplayArrays(st_out[:n_st], dev_out[:n_dev], host_out[:n_host], accepts, int(cycles),
                        int(ks[K_BAD_ABORTS]))


def _compiles(dev, host, status_ready) -> bool:
    """Whether `run_kv_swap` can replay these ports in the compiled kernel."""
    return (type(dev) is SimpleMemoryModel and type(host) in (HostLinkModel, SimpleMemoryModel)
            and (status_ready is None or isinstance(status_ready, ReadyPattern))
            and max(dev.p.size_log2, host.p.size_log2) <= DENSE_WORDS.bit_length() - 1)


def _dense(m: SimpleMemoryModel) -> np.ndarray:
    words = np.zeros(1 << m.p.size_log2, dtype=np.int64)
    if m.mem:
        a = np.fromiter(m.mem.keys(), dtype=np.int64, count=len(m.mem))
        v = np.fromiter(m.mem.values(), dtype=np.int64, count=len(m.mem))
        keep = (a >= 0) & (a <= m.mask)
        words[a[keep]] = v[keep]
    return words


def run_kv_swap(params: KvSwapParams, dev: SimpleMemoryModel, host: HostLinkModel,
                runs: Sequence[tuple[int, Run]], aborts: Sequence[tuple[int, int]] = (),
                status_ready: Callable[[int], bool] | None = None, max_cycles: int = 10_000_000) -> SwapRun:
    """Replay runs ``(available cycle, Run)`` and aborts ``(available cycle, tag)``, each stream in order; the
    ports are left as the controller leaves them (callers step them on to let queued writes land).

    Compiled (`replay_arrays`) when `_compiles` allows, else `KvSwapModel` stepped with the ports: one set of rules
    either way (see the module docstring)."""
    if _compiles(dev, host, status_ready):
        ports = (_Port(dev.p, 0, _dense(dev), dev), _Port(host.p, 0, _dense(host), host))
        rows = np.array([(c, r.tag, r.direction, r.src, r.dst, r.count, int(r.last)) for c, r in runs],
                        dtype=np.int64).reshape(-1, 7)
        res = replay_arrays(params, dev.p, host.p, 0, ports[0].words, ports[1].words, rows,
                            np.array(list(aborts), dtype=np.int64).reshape(-1, 2), status_ready, drain=False,
                            max_cycles=max_cycles, ports=ports)
        ports[0].store(dev)
        ports[1].store(host)
        return SwapRun(statuses=[tuple(x) for x in res.statuses.tolist()],
                       dev_cmds=[tuple(x[:4]) for x in res.dev_cmds.tolist()],
                       host_cmds=[tuple(x) for x in res.host_cmds.tolist()], cycles=res.cycles,
                       bad_aborts=res.bad_aborts, run_accepts=res.accepts.tolist())
    model = KvSwapModel(params)
    out = SwapRun()
    i = j = 0
    for t in range(max_cycles):
        if i == len(runs) and j == len(aborts) and model.idle():
            out.cycles, out.bad_aborts = t, model.bad_aborts
            return out
        r = runs[i][1] if i < len(runs) and runs[i][0] <= t else None
        a = aborts[j][1] if j < len(aborts) and aborts[j][0] <= t else None
        took_run, took_abort = model.cycle(t, dev, host, r, a, status_ready is None or status_ready(t), out)
        if took_run:
            out.run_accepts.append(t)
        i += took_run
        j += took_abort
        dev.step()
        host.step()
    raise RuntimeError(f"KV swap model did not finish within {max_cycles} cycles")


# --- transaction-level estimate ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LinkParams:
    """Host link for `swap_cycles`: ``overhead_cycles`` per burst, ``words_per_cycle`` streaming bandwidth."""

    overhead_cycles: int = 0
    words_per_cycle: float = 1.0


def coalesce(runs: Iterable[tuple[int, int, int]], max_burst_blocks: int) -> list[tuple[int, int, int]]:
    """Bursts ``(src, dst, blocks)`` the controller issues for one request's runs ``(src, dst, count)``.

    Same rule as the engine: runs adjacent in both source and destination join the current segment; a segment
    is cut into bursts of ``max_burst_blocks`` (the engine merges lazily, only while the remaining segment is
    shorter than a burst, which yields exactly these bursts).
    """
    bursts: list[tuple[int, int, int]] = []
    seg: list[int] | None = None
    for src, dst, n in runs:
        if seg is not None and src == seg[0] + seg[2] and dst == seg[1] + seg[2]:
            seg[2] += n
            continue
        if seg is not None:
            bursts.extend(_cut(seg, max_burst_blocks))
        seg = [src, dst, n]
    if seg is not None:
        bursts.extend(_cut(seg, max_burst_blocks))
    return bursts


def _cut(seg: list[int], mb: int) -> list[tuple[int, int, int]]:
    src, dst, left = seg
    out = []
    while left:
        n = min(left, mb)
        out.append((src, dst, n))
        src, dst, left = src + n, dst + n, left - n
    return out


def swap_cycles(runs: Iterable[tuple[int, int, int]], params: KvSwapParams, link: LinkParams) -> float:
    """Transaction-level cycles of one swap: ``sum over bursts (overhead + words / words_per_cycle)``.

    ``runs`` are one request's ``(src, dst, count)``. This is the steady-state streaming cost: it leaves out the
    fixed pipeline fill (memory latency, a few control cycles per request) and the controller's one or two
    bookkeeping cycles per burst, and assumes the device memory keeps up with the link. Against the cycle model
    with ``interval = 1`` memories it is a lower bound; see ``tests/blocks/kv_swap/test_kv_swap_model.py`` for the
    measured gap.
    """
    total = 0.0
    for _, _, n in coalesce(runs, params.max_burst_blocks):
        total += link.overhead_cycles + n * params.block_words / link.words_per_cycle
    return total


# --- stimulus shared by the tests and the execution API -------------------------------------------------------

@dataclass
class SwapWorkload:
    """Runs ``(cycle, Run)``, aborts ``(cycle, tag)``, memory preloads (word address -> data, every pool word), and
    the requests (their runs) in stream order."""

    runs: list[tuple[int, Run]]
    aborts: list[tuple[int, int]]
    dev_preload: dict[int, int]
    host_preload: dict[int, int]
    requests: list[list[Run]]


# An abort scenario's blocker moves at least this many words, far more than the cycles from its last run to the
# abort (the named request's runs, at most 9, and 1-3 cycles): see `random_swap_workload`.
BLOCKER_WORDS = 16


def _service_estimate(p: KvSwapParams, parts: Sequence[tuple[int, int, int]], bad: bool, dev: MemoryParams,
                      host: MemoryParams, overhead: int) -> int:
    """A generous bound on the cycles the controller needs for one request once it may start: 3/2 of the sum of
    a pipeline fill (both latencies and a few control cycles), per burst the link overhead and two control
    cycles, per word the slower memory's interval. Measured on the standard stimulus (10 seeds, status
    backpressure 0 to 90 %), the controller is idle for 30 to 700 cycles before each scenario with the plain sum,
    and scenarios fail to find it idle with half of it; status backpressure adds little (a request takes longer
    than its status does to leave)."""
    if bad:
        return 2 * (len(parts) + 8)
    bursts = sum(-(-n // p.max_burst_blocks) for _, _, n in parts)
    words = sum(n for _, _, n in parts) * p.block_words
    plain = 8 + dev.latency + host.latency + bursts * (overhead + 2) + words * max(dev.interval, host.interval)
    return 3 * plain // 2


def random_swap_workload(p: KvSwapParams, rng, *, n_requests: int, bad_fraction: float = 0.15,
                         abort_fraction: float = 0.2, idle_prob: float = 0.3, dev_mem: MemoryParams | None = None,
                         host_mem: MemoryParams | None = None, overhead_cycles: int = 0) -> SwapWorkload:
    """A seeded swap trace in both directions (``rng`` a numpy Generator).

    Runs are offered one a cycle at most, the stream idle in an ``idle_prob`` fraction of the cycles
    (`sim.core.stimulus.arrival_cycles` semantics; abort scenarios below add their drain gaps). Sources lie in the
    lower half of each pool and destinations in the upper half, so no swap reads what another writes, whatever
    the order of service; destinations are handed out in turn through the upper half and reused once it is full
    (each direction is served in order, so the later data wins). Each request is 1-3 extents (contiguous in
    source and destination), each split into 1-3 runs (so adjacent runs must coalesce); some extents continue
    the source but not the destination. A ``bad_fraction`` of requests carries an error (zero count, out of
    range, or more runs than ``run_depth``, in turn). Tags count up modulo ``2**tag_bits - 1``. There are
    ``n_requests`` requests plus a blocker for each abort scenario.

    Aborts are placed so that the contract alone decides them (`sim.blocks.kv_swap.reference`): an
    ``abort_fraction`` of the requests opens an *abort scenario*. It waits out a drain gap (`_service_estimate`
    of everything before, at ``dev_mem``/``host_mem``/``overhead_cycles``), so the controller is idle and takes
    the scenario's runs and abort as they are offered; then a blocker request of at least `BLOCKER_WORDS`
    words, and the request the abort names, in the blocker's direction, its runs back to back; then the abort:
    1-3 cycles after the named request's last run (a hit: that request is queued behind the blocker), or
    between its runs (a miss: still being received), or after the last run of a named request with an error (a
    miss: it is dead). Besides, a few aborts of the reserved tag ``2**tag_bits - 1`` come at runs in the middle
    of the stream (misses: no request has that tag).
    """
    mask32 = (1 << 32) - 1
    dev_mem = dev_mem or MemoryParams()
    host_mem = host_mem or MemoryParams()
    dev_words, host_words = p.dev_blocks * p.block_words, p.host_blocks * p.block_words
    dev_preload = {a: int(v) & mask32 for a, v in enumerate(rng.integers(0, 1 << 32, dev_words, dtype=np.uint64))}
    host_preload = {a: int(v) & mask32 for a, v in enumerate(rng.integers(0, 1 << 32, host_words, dtype=np.uint64))}
    pools = {SwapDir.OUT: (p.dev_blocks, p.host_blocks), SwapDir.IN: (p.host_blocks, p.dev_blocks)}
    next_dst = {d: pools[d][1] // 2 for d in SwapDir}
    max_count = (1 << p.count_bits) - 1
    unknown = (1 << p.tag_bits) - 1
    n_tags = max(1, unknown)
    runs: list[tuple[int, Run]] = []
    aborts: list[tuple[int, int]] = []
    requests: list[list[Run]] = []
    t = -1  # offer cycle of the last run
    busy = 0  # by then the controller has surely finished every request offered so far
    n_bad = 0

    def dst_for(d: SwapDir, n: int, gap: int) -> int:
        lo, hi = pools[d][1] // 2, pools[d][1]
        if next_dst[d] + gap + n > hi:
            next_dst[d] = lo
        else:
            next_dst[d] += gap
        dst = next_dst[d]
        next_dst[d] += n + int(rng.integers(0, 2))
        return dst

    def extents(d: SwapDir, count: int, max_n: int) -> list[tuple[int, int, int]]:
        src_half, dst_half = pools[d][0] // 2, pools[d][1] - pools[d][1] // 2
        parts: list[tuple[int, int, int]] = []
        for _ in range(count):
            n = int(rng.integers(1, max(1, min(max_n, max_count, src_half, dst_half)) + 1))
            if parts and rng.random() < 0.3 and parts[-1][0] + parts[-1][2] + n <= src_half:
                src, gap = parts[-1][0] + parts[-1][2], 1  # source continues, destination does not
            else:
                src, gap = int(rng.integers(0, src_half - n + 1)), 0
            dst = dst_for(d, n, gap)
            cuts = sorted({int(c) for c in rng.integers(1, n, int(rng.integers(0, 3)))}) if n > 1 else []
            edges = [0, *cuts, n]
            parts.extend((src + a, dst + a, b - a) for a, b in zip(edges, edges[1:], strict=False))
        return parts

    def make_bad(d: SwapDir, parts: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        nonlocal n_bad
        kind = n_bad % 3  # every kind of error, in turn
        n_bad += 1
        if kind == 0:
            i = int(rng.integers(0, len(parts)))
            return [*parts[:i], (parts[i][0], parts[i][1], 0), *parts[i + 1:]]
        if kind == 1:
            return [*parts, (pools[d][0] - 1, 0, 2)]
        return [(i, 0, 1) for i in range(p.run_depth + 2)]

    def emit(d: SwapDir, parts: list[tuple[int, int, int]], bad: bool, *, back_to_back: bool = False) -> list[int]:
        """Offer one request; return its runs' offer cycles."""
        nonlocal t, busy
        tag = len(requests) % n_tags
        req = [Run(tag, int(d), s, ds, n, i == len(parts) - 1) for i, (s, ds, n) in enumerate(parts)]
        cycles = []
        for r in req:
            t += 1 + (0 if back_to_back or idle_prob <= 0 else int(rng.geometric(1.0 - idle_prob)) - 1)
            runs.append((t, r))
            cycles.append(t)
        requests.append(req)
        busy = max(busy, t) + _service_estimate(p, parts, bad, dev_mem, host_mem, overhead_cycles)
        return cycles

    scenario_ok = p.queue_depth >= 2 and p.run_depth >= 2
    for _ in range(n_requests):
        d = SwapDir(int(rng.integers(0, 2)))
        if not (scenario_ok and rng.random() < abort_fraction):
            parts = extents(d, int(rng.integers(1, 4)), 5)
            bad = rng.random() < bad_fraction
            cycles = emit(d, make_bad(d, parts) if bad else parts, bad)
            if rng.random() < 0.02:
                aborts.append((cycles[0], unknown))
            continue
        # Abort scenario: drain, blocker, named request, abort.
        t = max(t, busy)
        blocks = min(-(-BLOCKER_WORDS // p.block_words), pools[d][0] // 2, pools[d][1] - pools[d][1] // 2)
        src, dst = int(rng.integers(0, pools[d][0] // 2 - blocks + 1)), dst_for(d, blocks, 0)
        blocker = []  # one extent, cut into runs of at most max_count blocks (they coalesce again)
        for a in range(0, blocks, max_count):
            blocker.append((src + a, dst + a, min(max_count, blocks - a)))
        if len(blocker) >= p.run_depth:  # leave run-FIFO room for the named request
            blocker = blocker[:p.run_depth - 1]
        emit(d, blocker, False, back_to_back=True)
        kind = int(rng.integers(0, 3))  # 0 hit, 1 still being received, 2 dead (an error); -1 no abort
        parts = extents(d, int(rng.integers(1, 4)), 5)
        # A hit needs the named request's runs taken as offered (run-FIFO room beside the blocker's) and the
        # abort (at most 3 cycles after them) before the request can start (4 + the blocker's words after the
        # blocker's last run: `sim.blocks.kv_swap.reference.abort_targets`).
        hit_ok = (len(parts) + len(blocker) <= p.run_depth
                  and len(parts) + 3 < 4 + sum(n for _, _, n in blocker) * p.block_words)
        if kind == 2:
            parts = make_bad(d, parts)
        elif kind == 0 and not hit_ok:
            kind = 1
        if kind == 1 and len(parts) < 2:
            kind = 0 if hit_ok else -1
        cycles = emit(d, parts, kind == 2, back_to_back=True)
        tag = requests[-1][0].tag
        if kind == 0:
            aborts.append((cycles[-1] + int(rng.integers(1, 4)), tag))
        elif kind == 1:
            aborts.append((cycles[0] + int(rng.integers(0, len(cycles) - 1)), tag))
        elif kind == 2:
            aborts.append((cycles[-1] + int(rng.integers(0, 4)), tag))
    if not any(tag == unknown for _, tag in aborts):
        aborts.append((runs[len(runs) // 2][0] if runs else 0, unknown))
    aborts.sort(key=lambda a: a[0])
    return SwapWorkload(runs, aborts, dev_preload, host_preload, requests)


def place_aborts(w: SwapWorkload, first_pass: SwapRun, rng, fraction: float) -> SwapWorkload:
    """Aborts for a ``fraction`` of ``w``'s requests, 1-3 cycles after their last run was accepted in
    ``first_pass`` (a model run of ``w`` without aborts), so that most of them find the request queued; plus the
    workload's own aborts (the unknown tag)."""
    aborts = list(w.aborts)
    for (_, r), t in zip(w.runs, first_pass.run_accepts, strict=True):
        if r.last and rng.random() < fraction:
            aborts.append((t + int(rng.integers(1, 4)), r.tag))
    aborts.sort(key=lambda a: a[0])
    return dataclasses.replace(w, aborts=aborts)
