"""Run the KV swap controller RTL: host-link stand-in, test harness, replay driver, Verilator glue.

* `HostLink` charges a per-burst overhead: a host command whose ``burst`` field is non-zero (the first of a
  burst) is held for ``overhead_cycles`` cycles of being offered before it reaches the memory; the others pass
  straight through. `sim.rtl.gateware.HostLinkMemory` is `HostLink` + `SimpleMemory`, the synthesizable "host link and
  host memory" stand-in; its Python model is `sim.blocks.kv_swap.model.HostLinkModel`.
* `KvSwapHarness`: the controller with a `SimpleMemory` as device memory and a `HostLink` + `SimpleMemory` as host,
  testbench memory ports (``tb_sel``) to preload and read back both memories, and monitors of the controller's
  ``dev``/``host`` commands (``mon_*``: valid, ready, payload) so the testbench logs every accepted command.
* `ReplayDriver`: the per-cycle stimulus and recording, shared by the cocotb testbench (`sim.blocks.kv_swap.tb`)
  and the Amaranth-simulator cross-check; it names signals as the Verilog ports (``run__valid``...).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.kv_swap import KvSwapController, KvSwapParams
from hw.memory import MemoryParams, mem_cmd_layout, mem_port_signature
from hw.pack import pack, unpack
from sim.blocks.kv_swap.model import Run, SwapRun
from sim.rtl.gateware import HostLink, MemPortMux, SimpleMemory

TOP = "kv_swap_harness"
TB = "sim.blocks.kv_swap.tb"


class KvSwapHarness(wiring.Component):
    """`KvSwapController` + device `SimpleMemory` + host `HostLink`/`SimpleMemory`, with testbench ports."""

    def __init__(self, params: KvSwapParams, dev_mem: MemoryParams, host_mem: MemoryParams,
                 overhead_cycles: int) -> None:
        if dev_mem.addr_bits != params.dev_addr_bits or host_mem.addr_bits != params.host_addr_bits:
            raise ValueError("the memories' addr_bits must equal the controller's dev_addr_bits/host_addr_bits")
        self.params, self.dev_mem, self.host_mem, self.overhead = params, dev_mem, host_mem, overhead_cycles
        self._ctl = KvSwapController(params)
        sig = self._ctl.signature.members
        super().__init__({
            "run": sig["run"], "abort": sig["abort"], "status": sig["status"], "idle": sig["idle"],
            "abort_err": sig["abort_err"], "bad_aborts": sig["bad_aborts"],
            "tb_dev": In(mem_port_signature(dev_mem.addr_bits)),
            "tb_host": In(mem_port_signature(host_mem.addr_bits)),
            "tb_sel": In(1),
            "dev_occupancy": Out(range(dev_mem.queue_depth + 1)),
            "host_occupancy": Out(range(host_mem.queue_depth + 1)),
            "mon_dev_valid": Out(1), "mon_dev_ready": Out(1), "mon_dev_payload": Out(mem_cmd_layout(dev_mem.addr_bits)),
            "mon_host_valid": Out(1), "mon_host_ready": Out(1), "mon_host_payload": Out(params.host_cmd_layout()),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self.params
        m.submodules.ctl = ctl = self._ctl
        m.submodules.dev_memory = dev_memory = SimpleMemory(self.dev_mem)
        m.submodules.dev_mux = dev_mux = MemPortMux(self.dev_mem.addr_bits)
        m.submodules.link = link = HostLink(p.host_addr_bits, p.burst_bits, self.overhead)
        m.submodules.host_memory = host_memory = SimpleMemory(self.host_mem)
        m.submodules.host_mux = host_mux = MemPortMux(self.host_mem.addr_bits)
        wiring.connect(m, ctl.dev, dev_mux.block)
        wiring.connect(m, wiring.flipped(self.tb_dev), dev_mux.tb)
        wiring.connect(m, dev_mux.mem, dev_memory.port)
        wiring.connect(m, ctl.host, link.host)
        wiring.connect(m, link.mem, host_mux.block)
        wiring.connect(m, wiring.flipped(self.tb_host), host_mux.tb)
        wiring.connect(m, host_mux.mem, host_memory.port)
        wiring.connect(m, wiring.flipped(self.run), ctl.run)
        wiring.connect(m, wiring.flipped(self.abort), ctl.abort)
        wiring.connect(m, ctl.status, wiring.flipped(self.status))
        m.d.comb += [
            self.idle.eq(ctl.idle), self.abort_err.eq(ctl.abort_err), self.bad_aborts.eq(ctl.bad_aborts),
            dev_mux.sel.eq(self.tb_sel), host_mux.sel.eq(self.tb_sel),
            self.dev_occupancy.eq(dev_memory.occupancy), self.host_occupancy.eq(host_memory.occupancy),
            self.mon_dev_valid.eq(ctl.dev.cmd.valid), self.mon_dev_ready.eq(ctl.dev.cmd.ready),
            self.mon_dev_payload.eq(ctl.dev.cmd.payload),
            self.mon_host_valid.eq(ctl.host.cmd.valid), self.mon_host_ready.eq(ctl.host.cmd.ready),
            self.mon_host_payload.eq(ctl.host.cmd.payload),
        ]
        return m


class ReplayDriver:
    """Per-cycle stimulus and recording of a replay (same for cocotb and the Amaranth simulator).

    Each cycle: `drive` gives the input values to set after the falling edge; once they have settled, `observe`
    reads the outputs (through ``get(name)``) and records the handshakes of the cycle. Runs and aborts are
    offered in order from their availability cycles; ``status.ready`` follows ``status_ready(cycle)``.
    """

    def __init__(self, params: KvSwapParams, dev_addr_bits: int, runs: Sequence[tuple[int, Run]],
                 aborts: Sequence[tuple[int, int]], status_ready: Callable[[int], bool]) -> None:
        self.p = params
        self.runs, self.aborts, self.status_ready = runs, aborts, status_ready
        self.run_l, self.status_l = params.run_layout(), params.status_layout()
        self.dev_l, self.host_l = mem_cmd_layout(dev_addr_bits), params.host_cmd_layout()
        self.i = self.j = 0
        self.out = SwapRun()
        self._offer: tuple[bool, bool, bool] = (False, False, False)

    def done(self) -> bool:
        return self.i == len(self.runs) and self.j == len(self.aborts)

    def drive(self, k: int) -> dict[str, int]:
        values = {}
        run_v = self.i < len(self.runs) and self.runs[self.i][0] <= k
        abort_v = self.j < len(self.aborts) and self.aborts[self.j][0] <= k
        values["run__valid"] = int(run_v)
        if run_v:
            r = self.runs[self.i][1]
            values["run__payload"] = pack(self.run_l, tag=r.tag, direction=r.direction, src_block=r.src,
                                          dst_block=r.dst, count=r.count, last=int(r.last))
        values["abort__valid"] = int(abort_v)
        if abort_v:
            values["abort__payload"] = self.aborts[self.j][1]
        sr = bool(self.status_ready(k))
        values["status__ready"] = int(sr)
        self._offer = (run_v, abort_v, sr)
        return values

    def observe(self, k: int, get: Callable[[str], int]) -> None:
        run_v, abort_v, sr = self._offer
        if run_v and get("run__ready"):
            self.i += 1
        if abort_v and get("abort__ready"):
            self.j += 1
        if sr and get("status__valid"):
            f = unpack(self.status_l, get("status__payload"))
            self.out.statuses.append((k, f["tag"], f["error"]))
        if get("mon_dev_valid") and get("mon_dev_ready"):
            f = unpack(self.dev_l, get("mon_dev_payload"))
            self.out.dev_cmds.append((k, f["addr"], f["write"], f["data"]))
        if get("mon_host_valid") and get("mon_host_ready"):
            f = unpack(self.host_l, get("mon_host_payload"))
            self.out.host_cmds.append((k, f["addr"], f["write"], f["data"], f["burst"]))

    def idle_inputs(self) -> dict[str, int]:
        return {"run__valid": 0, "abort__valid": 0, "status__ready": 0}


@functools.lru_cache(maxsize=4)
def harness_verilog(params: KvSwapParams, dev_mem: MemoryParams, host_mem: MemoryParams, overhead_cycles: int) -> str:
    """The harness's Verilog, kept per process: big memories take seconds to convert, and every replay needs the
    text for the build cache's key."""
    from hw.verilog import generate

    return generate(TOP, KvSwapHarness(params, dev_mem, host_mem, overhead_cycles))


def run_kv_swap_rtl(params: KvSwapParams, dev_mem: MemoryParams, host_mem: MemoryParams, overhead_cycles: int,
                    dev_preload: dict[int, int], host_preload: dict[int, int], runs: Sequence[tuple[int, Run]],
                    aborts: Sequence[tuple[int, int]], work: Path, *, status_seed: int = 0, status_bp: float = 0.0,
                    reset_after: int | None = None, readback_words: tuple[int, int] | None = None,
                    max_cycles: int = 200_000, waves: bool = False) -> dict:
    """Build (cached) and run the cocotb replay; return statuses, commands, cycles, ``bad_aborts`` and read-backs.

    The read-backs ``dev_mem``/``host_mem`` hold words ``0 .. blocks * block_words - 1`` of each pool, or the
    first ``readback_words`` (device, host) words. The replay fails if the controller is not idle after
    ``max_cycles`` cycles. ``waves`` builds with tracing and dumps the run's waves into ``work``.
    """
    from sim.rtl.runner import build, run_cocotb

    build_dir = build(TOP, {f"{TOP}.v": harness_verilog(params, dev_mem, host_mem, overhead_cycles)}, waves=waves)
    job = {
        "params": params.as_dict(), "dev_mem": dev_mem.as_dict(), "host_mem": host_mem.as_dict(),
        "overhead": overhead_cycles,
        "dev_preload": sorted(dev_preload.items()), "host_preload": sorted(host_preload.items()),
        "runs": [[c, r.tag, r.direction, r.src, r.dst, r.count, int(r.last)] for c, r in runs],
        "aborts": [list(a) for a in aborts],
        "status_seed": status_seed, "status_bp": status_bp, "reset_after": reset_after,
        "readback_words": list(readback_words or (params.dev_blocks * params.block_words,
                                                  params.host_blocks * params.block_words)),
        "max_cycles": max_cycles,
    }
    return run_cocotb(build_dir, TOP, TB, "kv_swap_replay", test_dir=work, job=job, waves=waves)
