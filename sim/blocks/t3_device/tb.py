"""cocotb testbenches of `T3Device` (harness `sim.blocks.t3_device.rtl`).

``t3_device_replay`` (the execution API's RTL target, `sim.blocks.t3_device`): preload the memory, program the
tracker and the DMA, replay open-loop input streams (each row offered from its ``cycle`` until taken; seeded
backpressure on ``link_out``, ``status`` and the compute responses), read the tracker's status registers and the
memory back.

``t3_device_cosim``: one `T3Device` in a ring whose other devices the testbench plays (see
`sim.studies.t3.cosim`). Phases: preload the GEMM inputs through the testbench memory port; program the tracker
and the DMA; replay (GEMM loads on ``compute``, updates on ``produce``, the mirrored ring on ``link_in``; seeded random
backpressure on ``link_out``, ``status`` and the compute responses); read back what the device holds. With
``reset_at`` the first replay is cut by a reset at that cycle; the output buffer is cleared, the tracker
reprogrammed (its counts were lost) and the whole replay run again, which must then be complete and exact.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly

from hw.dma import DmaParams
from hw.memory import mem_cmd_layout
from hw.reducer import ReduceOp, ReducerParams
from hw.tracker import CfgOp, StatusReg, TrackerParams
from sim.core.stimulus import ReadyPattern
from sim.rtl.drivers import MemPortDriver, StreamSink, StreamSource, act, idle, offer
from sim.rtl.tb_common import clear, read_job, start_clock, write_result
from sim.rtl.tb_common import reset as reset_dut

_LINK_FIELDS = ("dst_device", "addr", "op", "data", "tag")
_STATUS_FIELDS = ("desc", "tag", "error")


class _Bench:
    def __init__(self, dut, job: dict) -> None:
        self.dut, self.job = dut, job
        self.tp = TrackerParams(**job["params"]["tracker"])
        self.dp = DmaParams(**job["params"]["dma"])
        self.rp = ReducerParams(**job["params"]["reducer"])
        self.mem_l = mem_cmd_layout(job["mem"]["addr_bits"])
        self.mem = MemPortDriver(dut, "tb", job["mem"]["addr_bits"], occupancy="mem_occupancy")

    async def reset(self) -> None:
        dut = self.dut
        clear(dut, "tracker_cfg__valid", "dma_cfg__valid", "compute__cmd__valid", "produce__valid", "link_in__valid",
              "link_out__ready", "status__ready", "tb__cmd__valid")
        dut.tb_sel.value = 1
        await reset_dut(dut)

    async def write_words(self, words) -> None:
        await self.mem.preload(words, settle=16)

    async def program(self, with_dma: bool) -> None:
        """The tracker's entries, then (from the cycle after the last one is taken) the DMA's descriptors."""
        tracker = StreamSource(self.dut, "tracker_cfg", self.tp.cfg_layout()).extend(
            (0, {"op": CfgOp.PROGRAM, "index": entry, "threshold": thr, "desc": desc, "enable": en, "rearm": rearm})
            for entry, thr, desc, en, rearm in self.job["program"])
        await offer(self.dut, tracker)
        if with_dma:
            dma = StreamSource(self.dut, "dma_cfg", self.dp.cfg_layout()).extend(
                (0, dict(d, index=int(index))) for index, d in self.job["descriptors"].items())
            await offer(self.dut, dma, now=True)

    def _streams(self, ready_patterns) -> tuple[StreamSource, StreamSource, StreamSource, StreamSink, StreamSink,
                                                StreamSink]:
        """Drivers of the replay ports: sources ``compute.cmd``, ``produce``, ``link_in``; sinks ``link_out``,
        ``status``, ``compute.rsp`` under ``ready_patterns`` (in that order)."""
        dut = self.dut
        link_r, status_r, compute_r = ready_patterns
        return (StreamSource(dut, "compute__cmd", self.mem_l), StreamSource(dut, "produce", self.rp.packet_layout()),
                StreamSource(dut, "link_in", self.dp.link_layout()),
                StreamSink(dut, "link_out", link_r, self.dp.link_layout()),
                StreamSink(dut, "status", status_r, self.dp.status_layout()),
                StreamSink(dut, "compute__rsp", compute_r))

    async def replay(self, stop_at: int | None = None) -> dict:
        """Cycle 0 is the next falling edge. Inputs are set at the falling edge; handshakes are read once
        everything has settled (ReadOnly), because some readies depend on other inputs' valids."""
        dut, job = self.dut, self.job
        p, d, tiles, cw, lat = job["devices"], job["device"], job["tiles"], job["chunk_words"], job["link_latency"]
        running = job["running"]
        compute, produce, link_in, link_out, status, compute_rsp = ports = self._streams(
            ReadyPattern(job[f"{n}_seed"], job[f"{n}_bp"]) for n in ("link", "status", "compute"))
        compute.extend((row[0], {"addr": row[1], "write": 0, "data": 0}) for row in job["compute"])
        produce.extend((c, {"addr": addr, "op": ReduceOp.ADD_F32, "data": data, "tag": tag})
                       for c, addr, data, tag in job["produce"])

        def chunk_at(dev: int, stage: int) -> int:
            return (dev + p - 1 - stage) % p

        def ring(cycle: int, addr: int, tag: int, data: int) -> None:
            link_in.insert(cycle, {"dst_device": d, "addr": addr, "op": ReduceOp.ADD_F32, "data": data, "tag": tag})

        c1 = chunk_at(d, 1)
        for cyc, off, tile in job["stage0"]:
            # the predecessor's stage-0 store of the chunk this device reduces at stage 1: its raw partial
            ring(cyc + lat, c1 * cw + off, tile, job["pred_partial"][off])
        expected_status = len(job["program"])
        k = 0
        while True:
            await FallingEdge(dut.clk)
            if k == stop_at or (len(status.transfers) == expected_status and link_in.done and int(dut.idle.value)):
                break
            if k > job["max_cycles"]:
                raise AssertionError(
                    f"co-simulation did not finish: {len(status.transfers)}/{expected_status} statuses, loads "
                    f"{compute.index}/{len(job['compute'])}, updates {produce.index}/{len(job['produce'])}, "
                    f"{link_in.waiting} ring packets pending")
            await act(k, ports)
            if link_out.transfers and link_out.transfers[-1][0] == k:
                f = link_out.transfers[-1][1]
                # We sent our stage s-1 chunk; the predecessor sends, for its stage s-1, the chunk we reduce at
                # stage s (same offset, same tag by symmetry), holding its running sum.
                stage = f["tag"] // tiles + 1
                off = f["addr"] - chunk_at(d, stage - 1) * cw
                c = chunk_at(d, stage)
                ring(k + lat, c * cw + off, f["tag"], running[c][stage][off])
            k += 1
        idle(compute, produce, link_in, link_out, status)  # compute.rsp keeps its last ready
        return {"statuses": status.rows(*_STATUS_FIELDS), "link_out": link_out.rows(*_LINK_FIELDS), "cycles": k,
                "compute_responses": len(compute_rsp.transfers), "compute_reads": compute.index}

    async def replay_open(self) -> dict:
        """Open-loop replay. Cycle 0 is the next falling edge; inputs are set there and handshakes read once
        everything has settled (ReadOnly). The run ends at the first cycle in which every row was taken, every
        compute read answered and ``idle`` is high: ``cycles`` is that cycle's number."""
        dut, job = self.dut, self.job
        ports = self._streams(ReadyPattern(*job[f"{n}_ready"]) for n in ("link", "status", "compute"))
        compute, produce, link_in, link_out, status, compute_rsp = ports
        compute.extend((c, {"addr": a, "write": w, "data": v}) for c, a, w, v in job["compute"])
        produce.extend((c, {"addr": a, "op": op, "data": v, "tag": t}) for c, a, op, v, t in job["produce"])
        link_in.extend((c, {"dst_device": 0, "addr": a, "op": op, "data": v, "tag": t})
                       for c, a, op, v, t in job["link_in"])
        n_reads = sum(1 for row in job["compute"] if not row[2])
        k = 0
        while True:
            await FallingEdge(dut.clk)
            if k > job["max_cycles"]:
                raise AssertionError(
                    f"replay did not finish: compute {compute.index}/{len(job['compute'])}, produce "
                    f"{produce.index}/{len(job['produce'])}, link {link_in.index}/{len(job['link_in'])}, "
                    f"responses {len(compute_rsp.transfers)}/{n_reads}")
            for port in ports:
                port.drive(k)
            await ReadOnly()
            if (compute.done and produce.done and link_in.done and len(compute_rsp.transfers) == n_reads
                    and int(dut.idle.value)):
                break
            for port in ports:
                port.sample(k)
            k += 1
        await FallingEdge(dut.clk)
        idle(link_out, status, compute_rsp)
        return {"link_out": link_out.rows(*_LINK_FIELDS), "statuses": status.rows(*_STATUS_FIELDS),
                "compute_rsp": compute_rsp.rows(), "cycles": k}

    async def read_tracker_status(self) -> dict[str, int]:
        """The tracker's status registers, read over ``tracker_cfg`` (``READ``) and ``tracker_cfg_rsp``: each
        request offered until taken, then its response awaited (always ready)."""
        dut, out = self.dut, {}
        cfg = StreamSource(dut, "tracker_cfg", self.tp.cfg_layout())
        rsp = StreamSink(dut, "tracker_cfg_rsp")
        for reg in StatusReg:
            cfg.add(0, {"op": CfgOp.READ, "index": reg})
            await offer(dut, cfg)
            n = len(rsp.transfers)
            await act(0, (rsp,))
            while len(rsp.transfers) == n:
                await FallingEdge(dut.clk)
                await act(0, (rsp,))
            out[reg.name.lower()] = rsp.transfers[-1][1]
        return out

    async def read_back(self, addrs) -> list[list[int]]:
        for _ in range(8):
            await FallingEdge(self.dut.clk)
        self.mem.select()
        return [[a, w] for a, w in zip(addrs, await self.mem.read(addrs), strict=True)]


async def _start(dut, job: dict, num_devices: int) -> _Bench:
    """Clock, static inputs, reset, memory preload and programming (tracker and DMA)."""
    bench = _Bench(dut, job)
    start_clock(dut)
    dut.num_devices.value = num_devices
    dut.arb_mode.value, dut.arb_threshold.value, dut.arb_starvation_limit.value = job["arb"]
    dut.tracker_cfg_rsp__ready.value = 1
    await bench.reset()
    await bench.write_words(job["preload"])
    await bench.program(with_dma=True)
    return bench


@cocotb.test()
async def t3_device_cosim(dut) -> None:
    job = read_job()
    bench = await _start(dut, job, job["devices"])
    first = None
    if job.get("reset_at") is not None:
        first = await bench.replay(stop_at=job["reset_at"])
        await bench.reset()
        await bench.write_words([[a, 0] for a in job["output_words"]])
        await bench.program(with_dma=False)  # the DMA's table survives a reset; the tracker's counts do not
    run = await bench.replay()
    memory = await bench.read_back(job["readback"])
    result = dict(run, dma_bytes=4 * len(run["link_out"]), memory=memory, applied=int(dut.applied.value),
                  tracker_errors=int(dut.tracker_errors.value),
                  cut_run=None if first is None else {"cycles": first["cycles"], "statuses": len(first["statuses"])})
    write_result(job, result)
    assert run["compute_responses"] == len(job["compute"]), "every GEMM load must be answered"
    assert result["tracker_errors"] == 0


@cocotb.test()
async def t3_device_replay(dut) -> None:
    job = read_job()
    bench = await _start(dut, job, job["num_devices"])
    run = await bench.replay_open()
    tracker = await bench.read_tracker_status()
    memory = await bench.read_back(job["readback"])
    write_result(job, dict(run, tracker=tracker, memory=memory))
