"""Iteration-level serving engine: continuous batching, paged KV pools, priority preemption by swap.

One loop step = schedule, then one model iteration (vLLM 0.3.3 style: an iteration is either a prompt-only
prefill batch or a decode batch). Times are seconds of simulated time.

Systems (`SYSTEMS`) switch FastSwitch's three mechanisms on and off:

``block_groups``
    KV blocks come from the buddy-style `BuddyAllocator` (GPU and CPU pools) and a swap copies each contiguous
    run of blocks with one copy per layer for K and one for V. Off: `PagedAllocator` and one copy per block
    per layer for K and for V (2*L*N copies), as vLLM does.
``async_swap``
    Swaps run on two copy channels (one per direction) while the GPU computes. A swapped-out request's GPU
    blocks are freed when its copy ends; a swapped-in request joins the batch at the first iteration after its
    copy ends; a swap-in waits for the same request's swap-out. The GPU only waits when nothing is runnable.
    Off: the engine waits for every swap issued in a step before the iteration (the GPU idles meanwhile).
``kv_reuse``
    A conversation's CPU copy is kept after swap-in and across turns (until the conversation ends or the CPU
    pool needs the room, least recently used first); at swap-out only blocks written since the copy was made
    are copied, and ``reuse_reserve_blocks`` of room for the next turn is allocated with the copy.

Time model per iteration (``t = max(compute, memory) + overhead``):
    prefill of prompts p_i: FLOPs ``2*P*sum(p) + 2*L*H*sum(p^2)`` (linear layers + causal attention), bytes
    ``weights + KV written``; decode of a batch with contexts c_i: FLOPs ``2*P*B + 4*L*H*sum(c)``, bytes
    ``weights + KV read (sum(c) tokens)`` (memory-bound). Peak FLOP/s and bandwidth are scaled by the GPU's
    efficiencies. Every turn's prompt is its whole history (no prefix caching, as in vLLM 0.3.3), for every
    system. Swaps do not slow the compute (copy engines, assumed).

KV pool: ``memory * utilization - weights - activation reserve`` bytes of GPU blocks (vLLM's profile), and
``cpu_swap_gb`` of host blocks. A block holds ``block_tokens`` tokens of K and V in every layer.
"""

from __future__ import annotations

import heapq
from bisect import insort
from dataclasses import dataclass

import numpy as np

from sim.core.config import FastSwitchConfig

from .kv import BuddyAllocator, PagedAllocator, copy_pairs, copy_segments, run_blocks
from .link import PcieLinkModel, SwapCostModel
from .metrics import MetricsRecorder
from .scheduler import KEY_SHIFT, PriorityPattern, rank_key
from .workload import Workload


@dataclass(frozen=True)
class SystemSpec:
    """Which FastSwitch mechanisms are on."""

    name: str
    block_groups: bool = False
    async_swap: bool = False
    kv_reuse: bool = False


SYSTEMS: dict[str, SystemSpec] = {
    "baseline": SystemSpec("baseline"),
    "fastswitch": SystemSpec("fastswitch", True, True, True),
    "block_groups_only": SystemSpec("block_groups_only", block_groups=True),
    "async_swap_only": SystemSpec("async_swap_only", async_swap=True),
    "kv_reuse_only": SystemSpec("kv_reuse_only", kv_reuse=True),
}

WAITING, RUNNING, SWAPPED, DONE = 0, 1, 2, 3


@dataclass(frozen=True)
class SwapRecord:
    """One swap as the engine issued it (the first ``record_swaps`` swaps are kept in ``ServingEngine.swap_log``).

    ``copies`` are ``(src block, dst block, blocks)`` in the pools' block numbers (GPU pool for ``"out"``'s
    source and ``"in"``'s destination, CPU pool for the other side); a block holds every layer's K and V.
    """

    start: float
    end: float
    direction: str  # "out": GPU -> CPU, "in": CPU -> GPU
    conv: int
    copies: tuple[tuple[int, int, int], ...]


class _Conv:
    __slots__ = ("cid", "level", "turns", "next_turn", "history", "cpu_runs", "cpu_alloc", "cpu_valid", "req")

    def __init__(self, cid: int, level: int, turns: np.ndarray) -> None:
        self.cid, self.level, self.turns = cid, level, turns
        self.next_turn = 0
        self.history = 0
        self.cpu_runs: list[tuple[int, int]] | None = None
        self.cpu_alloc = 0  # CPU blocks allocated to the copy
        self.cpu_valid = 0  # tokens the CPU copy holds
        self.req: _Req | None = None


class _Req:
    __slots__ = ("conv", "turn", "key", "arrival", "prompt", "remaining", "ctx", "runs", "nblocks", "ready_at",
                 "last_tok", "first_done", "state")

    def __init__(self, conv: _Conv, turn: int, arrival: float, prompt: int, answer: int) -> None:
        self.conv, self.turn, self.arrival = conv, turn, arrival
        self.key = rank_key(conv.level, conv.cid)
        self.prompt = prompt  # tokens the next prefill processes
        self.remaining = answer
        self.ctx = 0  # tokens whose KV is in the cache
        self.runs: list[tuple[int, int]] = []
        self.nblocks = 0
        self.ready_at = 0.0  # end of this request's last swap
        self.last_tok = 0.0
        self.first_done = False
        self.state = WAITING


def _key(r: _Req) -> int:
    return r.key


class ServingEngine:
    """Simulate one system on one setup. Use `simulate` for the one-call form."""

    def __init__(self, cfg: FastSwitchConfig, system: SystemSpec | str = "fastswitch",
                 swap_cost: SwapCostModel | None = None, record_swaps: int = 0) -> None:
        self.cfg = cfg
        self.record_swaps = record_swaps
        self.swap_log: list[SwapRecord] = []
        self.sys = SYSTEMS[system] if isinstance(system, str) else system
        self.swap_cost = swap_cost or PcieLinkModel(cfg.pcie.bandwidth_gbps, cfg.pcie.per_copy_us)
        m, g, s = cfg.model, cfg.gpu, cfg.scheduler
        self.bt = s.block_tokens
        self.layers = m.layers
        self.layer_block_bytes = s.block_tokens * m.kv_heads * m.head_size * m.dtype_bytes  # K (or V), 1 layer
        self.block_bytes = 2 * m.layers * self.layer_block_bytes
        self.kv_token_bytes = self.block_bytes / s.block_tokens
        self.weight_bytes = m.params_billion * 1e9 * m.dtype_bytes
        kv_pool = g.memory_gb * 1e9 * g.memory_utilization - self.weight_bytes - g.activation_reserve_gb * 1e9
        self.gpu_blocks = int(kv_pool // self.block_bytes)
        if self.gpu_blocks < 1:
            raise ValueError(f"no GPU memory left for the KV cache: {kv_pool / 1e9:.2f} GB after the weights")
        self.cpu_blocks = max(1, int(s.cpu_swap_gb * 1e9 // self.block_bytes))
        self.watermark = int(s.watermark * self.gpu_blocks)
        self.flops = g.tflops * 1e12 * g.compute_efficiency
        self.bw = g.hbm_gbps * 1e9 * g.memory_efficiency
        self.overhead = g.iteration_overhead_ms * 1e-3
        self.params = m.params_billion * 1e9
        self.attn_flops = m.layers * m.hidden  # per token pair, x2 (prefill, causal) or x4 (decode)

    # helpers -------------------------------------------------------------------------------------------
    def _blocks(self, tokens: int) -> int:
        return -(-tokens // self.bt)

    def _new_pool(self, n: int) -> PagedAllocator | BuddyAllocator:
        if self.sys.block_groups:
            return BuddyAllocator(n, self.cfg.max_group_blocks.bit_length() - 1)
        return PagedAllocator(n)

    def _runs_bytes(self, src: list, dst: list, skip: int, count: int) -> np.ndarray:
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        if not self.sys.block_groups:
            # one copy per block per layer for K and for V; a read-only broadcast avoids materialising it
            return np.broadcast_to(np.int64(self.layer_block_bytes), (2 * self.layers * count,))
        segs = np.asarray(copy_segments(src, dst, skip, count), dtype=np.int64)
        return np.repeat(segs * self.layer_block_bytes, 2 * self.layers)

    def _prefill_time(self, prompts: list[int]) -> float:
        tok = sum(prompts)
        sq = sum(p * p for p in prompts)
        compute = (2 * self.params * tok + 2 * self.attn_flops * sq) / self.flops
        memory = (self.weight_bytes + tok * self.kv_token_bytes) / self.bw
        return max(compute, memory) + self.overhead

    def _decode_time(self, batch: int, ctx_sum: int) -> float:
        compute = (2 * self.params * batch + 4 * self.attn_flops * ctx_sum) / self.flops
        memory = (self.weight_bytes + ctx_sum * self.kv_token_bytes) / self.bw
        return max(compute, memory) + self.overhead

    # main loop -------------------------------------------------------------------------------------------
    def run(self, workload: Workload) -> dict:
        """Serve every turn of ``workload``; return the metrics dict (see `metrics.MetricsRecorder.summary`)."""
        cfg, sysm = self.cfg, self.sys
        self.gpu = gpu = self._new_pool(self.gpu_blocks)
        self.cpu = self._new_pool(self.cpu_blocks)
        self.rec = rec = MetricsRecorder()
        self.prio = prio = PriorityPattern(cfg.scheduler, cfg.workload.seed)
        self.waiting: list[_Req] = []
        self.swapped: list[_Req] = []
        self.running: list[_Req] = []  # sorted by key
        self.retained: dict[int, _Conv] = {}  # evictable CPU copies (kv_reuse), least recently used first
        self.pending_out: list[tuple[float, int, list]] = []  # async swap-outs: (end, seq, gpu runs)
        self.pending_free = 0
        self.chan = {"out": 0.0, "in": 0.0}
        self.barrier = 0.0
        self._seq = 0
        max_seqs = cfg.scheduler.max_num_seqs
        max_tok = cfg.scheduler.max_batched_tokens
        bt = self.bt

        turns = workload.turns
        arrivals: list[tuple[float, int, int]] = []  # (time, conv id, turn)
        convs: dict[int, _Conv] = {}
        if len(turns):
            starts = np.flatnonzero(np.r_[True, turns["conv"][1:] != turns["conv"][:-1]])
            bounds = np.r_[starts, len(turns)]
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                cid = int(turns["conv"][a])
                convs[cid] = _Conv(cid, 0, turns[a:b])
                arrivals.append((int(turns["arrival_us"][a]) * 1e-6, cid, 0))
        heapq.heapify(arrivals)
        live_turns = len(turns)

        t = 0.0
        prev_end = 0.0
        iteration = 0
        next_redraw = prio.period
        while True:
            # arrivals and finished async swap-outs
            while arrivals and arrivals[0][0] <= t:
                at, cid, k = heapq.heappop(arrivals)
                live_turns -= self._arrive(convs[cid], k, at, t)
            while self.pending_out and self.pending_out[0][0] <= t:
                _, _, runs = heapq.heappop(self.pending_out)
                n = run_blocks(runs)
                gpu.free(runs)
                self.pending_free -= n
            if iteration >= next_redraw:
                self._redraw()
                next_redraw = iteration + prio.period
            self.barrier = t

            # vLLM's priority preemption for the head of the waiting (and swapped) queue
            head = self._head()
            if head is not None and self.running:
                need = self._need(head)
                avail = gpu.free_blocks + self.pending_free - self.watermark
                while avail < need and self.running and self.running[-1].key > head.key:
                    victim = self.running[-1]
                    avail += victim.nblocks
                    self._preempt(victim, t)

            # admissions in priority order: prefill for new requests, swap-in for swapped ones
            prefill: list[_Req] = []
            tokens = 0
            wait = None  # when in-flight swap-outs will have freed room for the head (async only)
            while True:
                head = self._head()
                if head is None or len(self.running) + len(prefill) >= max_seqs:
                    break
                need = self._need(head)
                if gpu.free_blocks - self.watermark < need:
                    wait = self._pending_until(need + self.watermark) if not prefill else None
                    break
                if head.state == WAITING:
                    if prefill and tokens + head.prompt > max_tok:
                        break
                    self.waiting.pop(0)
                    head.runs = gpu.allocate(need)
                    head.nblocks = need
                    head.state = RUNNING
                    prefill.append(head)
                    tokens += head.prompt
                else:
                    if prefill:
                        break
                    self.swapped.pop(0)
                    self._swap_in(head, t, need)

            if wait is not None:
                # dependency: the head of the queue waits for swap-outs in flight; sync on them, GPU idle
                rec.swap_stall += wait - t
                t = wait
                continue
            if prefill:
                start = max(t, self.barrier) if not sysm.async_swap else t
                dur = self._prefill_time([r.prompt for r in prefill])
                end = start + dur
                for r in prefill:
                    r.ctx = r.prompt
                    r.remaining -= 1
                    r.last_tok = end
                    if not r.first_done:
                        r.first_done = True
                        rec.ttft.append(end - r.arrival)
                    rec.output_tokens += 1
                    insort(self.running, r, key=_key)
                    if r.remaining == 0:
                        live_turns -= self._finish(r, end, arrivals)
                rec.prefill_tokens += tokens
            else:
                # decode: reserve each runnable request's next slot, preempting the lowest-priority request
                ready_by = t if sysm.async_swap else float("inf")
                batch: list[_Req] = []
                for r in list(self.running):
                    if r.state != RUNNING or r.ready_at > ready_by:
                        continue
                    if r.ctx >= r.nblocks * bt:
                        while gpu.free_blocks == 0 and self.pending_free == 0:
                            self._preempt(self.running[-1], t)
                            if r.state != RUNNING:
                                break
                        if r.state != RUNNING or gpu.free_blocks == 0:
                            continue  # preempted, or waits for an in-flight swap-out to free blocks
                        gpu.extend(r.runs, 1)
                        r.nblocks += 1
                    batch.append(r)
                if not batch:
                    nxt = self._next_event(arrivals, t)
                    if nxt is None:
                        if live_turns or self.waiting or self.swapped or self.running:
                            raise RuntimeError(f"serving engine stalled at t={t:.6f}s with work left "
                                               f"({len(self.waiting)} waiting, {len(self.swapped)} swapped, "
                                               f"{len(self.running)} running)")
                        break
                    t = nxt
                    continue
                start = max(t, self.barrier) if not sysm.async_swap else t
                ctx_sum = 0
                for r in batch:
                    ctx_sum += r.ctx
                dur = self._decode_time(len(batch), ctx_sum)
                end = start + dur
                regular = 0
                gaps = rec.tbt_gaps
                for r in batch:
                    if r.last_tok == prev_end:
                        regular += 1
                    else:
                        gaps.append(end - r.last_tok)
                    r.last_tok = end
                    r.ctx += 1
                    r.remaining -= 1
                    if r.remaining == 0:
                        live_turns -= self._finish(r, end, arrivals)
                if regular:
                    rec.tbt_regular.append((end - prev_end, regular))
                rec.output_tokens += len(batch)
            rec.swap_stall += start - t
            rec.busy += dur
            rec.iterations += 1
            iteration += 1
            prev_end = t = end
        rec.makespan = t
        rec.gpu_blocks, rec.cpu_blocks = self.gpu_blocks, self.cpu_blocks
        return rec.summary(self.sys.name)

    # events ---------------------------------------------------------------------------------------------
    def _next_event(self, arrivals: list, t: float) -> float | None:
        cands = []
        if arrivals:
            cands.append(arrivals[0][0])
        if self.pending_out:
            cands.append(self.pending_out[0][0])
        cands.extend(r.ready_at for r in self.running if r.ready_at > t)
        if self.barrier > t:
            cands.append(self.barrier)
        later = [c for c in cands if c > t]
        return min(later) if later else None

    def _pending_until(self, blocks: int) -> float | None:
        """The time at which ``blocks`` GPU blocks are free, counting in-flight swap-outs (None: never)."""
        if not self.pending_out:
            return None
        free = self.gpu.free_blocks
        for end, _, runs in sorted(self.pending_out):
            free += run_blocks(runs)
            if free >= blocks:
                return end
        return None

    def _arrive(self, conv: _Conv, k: int, at: float, now: float) -> int:
        """A turn arrives; returns the number of turns that leave the workload (rejections)."""
        row = conv.turns[k]
        if k == 0:
            conv.level = self.prio.initial()
        prompt = conv.history + int(row["new_tokens"])
        answer = int(row["answer_tokens"])
        need = self._blocks(prompt + answer)
        limit = self.gpu_blocks - self.watermark
        if need > limit:
            reason = (f"needs {need} KV blocks ({prompt + answer} tokens) but the GPU pool has {limit} "
                      f"usable blocks")
            self.rec.reject(conv.cid, k, reason)
            for later in range(k + 1, len(conv.turns)):
                self.rec.reject(conv.cid, later, f"turn {k} of the conversation was rejected")
            self._drop_cpu_copy(conv)
            return len(conv.turns) - k
        r = _Req(conv, k, at, prompt, answer)
        conv.req = r
        conv.next_turn = k + 1
        insort(self.waiting, r, key=_key)
        return 0

    def _finish(self, r: _Req, end: float, arrivals: list) -> int:
        r.state = DONE
        self.running.remove(r)
        self.gpu.free(r.runs)
        r.runs = []
        conv = r.conv
        conv.history = r.ctx + 1  # the last token's KV is not written yet; the next turn's prompt holds it
        conv.req = None
        self.rec.turns_done += 1
        if conv.cpu_runs is not None:
            self.retained.pop(conv.cid, None)
            self.retained[conv.cid] = conv
        if conv.next_turn < len(conv.turns):
            think = int(conv.turns[conv.next_turn]["think_us"]) * 1e-6
            heapq.heappush(arrivals, (end + think, conv.cid, conv.next_turn))
        else:
            self._drop_cpu_copy(conv)
        return 1

    def _redraw(self) -> None:
        live = sorted({r.conv.cid: r.conv for r in (*self.waiting, *self.swapped, *self.running)}.items())
        if not live:
            return
        convs = [c for _, c in live]
        new = self.prio.redraw(np.array([c.level for c in convs], dtype=np.int64))
        for c, lv in zip(convs, new.tolist(), strict=True):
            c.level = lv
            if c.req is not None:
                c.req.key = (lv << KEY_SHIFT) | c.cid
        self.waiting.sort(key=_key)
        self.swapped.sort(key=_key)
        self.running.sort(key=_key)
        self.rec.priority_updates += 1

    def _head(self) -> _Req | None:
        w = self.waiting[0] if self.waiting else None
        s = self.swapped[0] if self.swapped else None
        if w is None or (s is not None and s.key < w.key):
            return s
        return w

    def _need(self, r: _Req) -> int:
        return self._blocks(r.prompt) if r.state == WAITING else self._blocks(r.ctx + 1)

    # swapping -------------------------------------------------------------------------------------------
    def _drop_cpu_copy(self, conv: _Conv) -> None:
        if conv.cpu_runs is not None:
            self.cpu.free(conv.cpu_runs)
        conv.cpu_runs, conv.cpu_alloc, conv.cpu_valid = None, 0, 0
        self.retained.pop(conv.cid, None)

    def _cpu_room(self, n: int) -> bool:
        """Make ``n`` CPU blocks free, evicting retained copies least recently used first."""
        while self.cpu.free_blocks < n and self.retained:
            cid = next(iter(self.retained))
            self._drop_cpu_copy(self.retained[cid])
            self.rec.reuse_evictions += 1
        return self.cpu.free_blocks >= n

    def _preempt(self, r: _Req, t: float) -> None:
        """Preempt a running request by swapping its KV cache out (by recompute if the CPU pool is full)."""
        self.running.remove(r)
        self.rec.preemptions += 1
        conv, reuse = r.conv, self.sys.kv_reuse
        nb = self._blocks(r.ctx)
        self.retained.pop(conv.cid, None)  # the copy is needed now
        clean = 0
        if reuse and conv.cpu_runs is not None:
            v = conv.cpu_valid
            clean = min(nb, self._blocks(v) if r.ctx == v else v // self.bt)
        else:
            self._drop_cpu_copy(conv)
        grow = nb - conv.cpu_alloc
        if grow > 0:
            extra = self.cfg.reuse_reserve_blocks if reuse else 0
            if not self._cpu_room(grow + extra):
                extra = 0
            if not self._cpu_room(grow):
                self._recompute(r)
                return
            if conv.cpu_runs is None:
                conv.cpu_runs = self.cpu.allocate(grow + extra)
            else:
                self.cpu.extend(conv.cpu_runs, grow + extra)
            conv.cpu_alloc += grow + extra
        end = self._issue("out", max(t, r.ready_at), conv.cid, r.runs, conv.cpu_runs, clean, nb - clean)
        self.rec.reused_blocks += clean
        conv.cpu_valid = r.ctx
        r.state = SWAPPED
        r.ready_at = end
        if self.sys.async_swap and end > t:
            self._seq += 1
            heapq.heappush(self.pending_out, (end, self._seq, r.runs))
            self.pending_free += r.nblocks
        else:
            self.gpu.free(r.runs)
        r.runs, r.nblocks = [], 0
        insort(self.swapped, r, key=_key)

    def _recompute(self, r: _Req) -> None:
        self.rec.recomputes += 1
        self.gpu.free(r.runs)
        r.runs, r.nblocks = [], 0
        r.prompt = r.ctx + 1  # the cached tokens and the last generated one
        r.ctx = 0
        r.state = WAITING
        self._drop_cpu_copy(r.conv)
        insort(self.waiting, r, key=_key)

    def _swap_in(self, r: _Req, t: float, need: int) -> None:
        conv = r.conv
        r.runs = self.gpu.allocate(need)
        r.nblocks = need
        nb = self._blocks(r.ctx)
        r.ready_at = self._issue("in", max(t, r.ready_at), conv.cid, conv.cpu_runs or [], r.runs, 0, nb)
        r.state = RUNNING
        if self.sys.kv_reuse:
            self.retained[conv.cid] = conv
        else:
            self._drop_cpu_copy(conv)
        insort(self.running, r, key=_key)

    def _issue(self, direction: str, not_before: float, conv: int, src: list, dst: list, skip: int,
               count: int) -> float:
        """Issue the copy of logical blocks ``[skip, skip + count)`` from ``src`` to ``dst`` runs; return its end."""
        runs_bytes = self._runs_bytes(src, dst, skip, count)
        dur = float(self.swap_cost.swap_seconds(runs_bytes, direction))
        start = max(not_before, self.chan[direction])
        end = start + dur
        if count > 0 and len(self.swap_log) < self.record_swaps:
            self.swap_log.append(SwapRecord(start, end, direction, conv, tuple(copy_pairs(src, dst, skip, count))))
        self.chan[direction] = end
        if not self.sys.async_swap:
            self.barrier = max(self.barrier, end)
        self.rec.swap(direction, int(np.sum(runs_bytes)), len(runs_bytes), dur)
        return end


def offered_gpu_seconds(cfg: FastSwitchConfig, workload: Workload) -> float:
    """GPU time the workload needs at best, on the engine's time model: a load estimate, not a schedule.

    Every turn's prompt (its whole history) prefilled alone at the compute bound, plus every answer token
    decoded in a batch as large as the GPU KV pool holds at the workload's token-weighted mean decode context
    (iteration time incl. overhead, divided by the batch). Divided by the arrival span it gives the offered
    load: above 1 the setup is overloaded under any scheduler (queues and the swap volume grow without bound).
    """
    eng = ServingEngine(cfg, "baseline")
    t = workload.turns
    if not len(t):
        return 0.0
    conv = t["conv"].astype(np.int64)
    new = t["new_tokens"].astype(np.int64)
    ans = t["answer_tokens"].astype(np.int64)
    first = np.r_[True, conv[1:] != conv[:-1]]
    turn_tokens = new + ans
    # history before each turn = tokens of the conversation's earlier turns
    csum = np.cumsum(turn_tokens)
    start = np.maximum.accumulate(np.where(first, np.arange(len(t)), 0))
    history = csum - turn_tokens - np.where(start > 0, csum[start - 1], 0)
    prompts = (history + new).astype(np.float64)
    prefill = float(np.sum(2 * eng.params * prompts + 2 * eng.attn_flops * prompts**2)) / eng.flops
    ctx = float(np.sum(ans * (prompts + (ans - 1) / 2)) / np.sum(ans))
    batch = max(1, min(cfg.scheduler.max_num_seqs, int(eng.gpu_blocks * eng.bt // max(1.0, ctx))))
    decode = float(np.sum(ans)) * eng._decode_time(batch, round(batch * ctx)) / batch
    return prefill + decode


def simulate(cfg: FastSwitchConfig, workload: Workload, system: SystemSpec | str = "fastswitch",
             swap_cost: SwapCostModel | None = None) -> dict:
    """Serve ``workload`` with ``system`` on the setup ``cfg``; return the metrics dict."""
    return ServingEngine(cfg, system, swap_cost).run(workload)
