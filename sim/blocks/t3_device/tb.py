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

import heapq

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hw.dma import DmaParams
from hw.memory import mem_cmd_layout
from hw.pack import pack, unpack
from hw.reducer import ReduceOp, ReducerParams
from hw.tracker import CfgOp, StatusReg, TrackerParams
from sim.core.stimulus import ReadyPattern
from sim.rtl.tb_common import read_job, write_result


class _Bench:
    def __init__(self, dut, job: dict) -> None:
        self.dut, self.job = dut, job
        self.tp = TrackerParams(**job["params"]["tracker"])
        self.dp = DmaParams(**job["params"]["dma"])
        self.rp = ReducerParams(**job["params"]["reducer"])
        self.mem_l = mem_cmd_layout(job["mem"]["addr_bits"])

    async def reset(self) -> None:
        dut = self.dut
        for name in ("tracker_cfg__valid", "dma_cfg__valid", "compute__cmd__valid", "produce__valid",
                     "link_in__valid", "link_out__ready", "status__ready", "tb__cmd__valid"):
            getattr(dut, name).value = 0
        dut.tb_sel.value = 1
        dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(dut.clk)
        dut.rst.value = 0

    async def write_words(self, words) -> None:
        dut = self.dut
        dut.tb_sel.value = 1
        for addr, word in words:
            await FallingEdge(dut.clk)
            dut.tb__cmd__payload.value = pack(self.mem_l, addr=addr, write=1, data=word)
            dut.tb__cmd__valid.value = 1
            while not int(dut.tb__cmd__ready.value):
                await FallingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.tb__cmd__valid.value = 0
        while int(dut.mem_occupancy.value):
            await FallingEdge(dut.clk)
        for _ in range(16):
            await FallingEdge(dut.clk)
        dut.tb_sel.value = 0

    async def program(self, with_dma: bool) -> None:
        dut = self.dut
        for entry, thr, desc, en, rearm in self.job["program"]:
            await FallingEdge(dut.clk)
            dut.tracker_cfg__payload.value = pack(self.tp.cfg_layout(), op=CfgOp.PROGRAM, index=entry,
                                                  threshold=thr, desc=desc, enable=en, rearm=rearm)
            dut.tracker_cfg__valid.value = 1
            while not int(dut.tracker_cfg__ready.value):
                await FallingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.tracker_cfg__valid.value = 0
        if with_dma:
            for index, d in self.job["descriptors"].items():
                dut.dma_cfg__payload.value = pack(self.dp.cfg_layout(), index=int(index), **d)
                dut.dma_cfg__valid.value = 1
                await FallingEdge(dut.clk)
            dut.dma_cfg__valid.value = 0

    async def replay(self, stop_at: int | None = None) -> dict:
        """Cycle 0 is the next falling edge. Inputs are set at the falling edge; handshakes are read once
        everything has settled (ReadOnly), because some readies depend on other inputs' valids."""
        dut, job = self.dut, self.job
        p, d, tiles, cw, lat = job["devices"], job["device"], job["tiles"], job["chunk_words"], job["link_latency"]
        running = job["running"]
        link_ready = ReadyPattern(job["link_seed"], job["link_bp"])
        status_ready = ReadyPattern(job["status_seed"], job["status_bp"])
        compute_ready = ReadyPattern(job["compute_seed"], job["compute_bp"])
        compute, produce = job["compute"], job["produce"]
        link_l, status_l, pkt_l = self.dp.link_layout(), self.dp.status_layout(), self.rp.packet_layout()

        def chunk_at(dev: int, stage: int) -> int:
            return (dev + p - 1 - stage) % p

        pending: list[tuple[int, int, dict]] = []
        seq = 0
        c1 = chunk_at(d, 1)
        for cyc, off, tile in job["stage0"]:
            # the predecessor's stage-0 store of the chunk this device reduces at stage 1: its raw partial
            heapq.heappush(pending, (cyc + lat, seq, {"addr": c1 * cw + off, "tag": tile,
                                                      "data": job["pred_partial"][off]}))
            seq += 1
        expected_status = len(job["program"])
        statuses, link_out = [], []
        ci = pi = compute_rsp = 0
        k = 0
        while True:
            await FallingEdge(dut.clk)
            if k == stop_at or (len(statuses) == expected_status and not pending and int(dut.idle.value)):
                break
            if k > job["max_cycles"]:
                raise AssertionError(
                    f"co-simulation did not finish: {len(statuses)}/{expected_status} statuses, loads {ci}/"
                    f"{len(compute)}, updates {pi}/{len(produce)}, {len(pending)} ring packets pending")
            want_c = ci < len(compute) and compute[ci][0] <= k
            if want_c:
                dut.compute__cmd__payload.value = pack(self.mem_l, addr=compute[ci][1], write=0, data=0)
            dut.compute__cmd__valid.value = int(want_c)
            want_p = pi < len(produce) and produce[pi][0] <= k
            if want_p:
                _, addr, data, tag = produce[pi]
                dut.produce__payload.value = pack(pkt_l, addr=addr, op=ReduceOp.ADD_F32, data=data, tag=tag)
            dut.produce__valid.value = int(want_p)
            want_l = bool(pending) and pending[0][0] <= k
            if want_l:
                pkt = pending[0][2]
                dut.link_in__payload.value = pack(link_l, dst_device=d, addr=pkt["addr"], op=ReduceOp.ADD_F32,
                                                  data=pkt["data"], tag=pkt["tag"])
            dut.link_in__valid.value = int(want_l)
            lr, sr, cr = link_ready(k), status_ready(k), compute_ready(k)
            dut.link_out__ready.value = int(lr)
            dut.status__ready.value = int(sr)
            dut.compute__rsp__ready.value = int(cr)
            await ReadOnly()
            if want_c and int(dut.compute__cmd__ready.value):
                ci += 1
            if cr and int(dut.compute__rsp__valid.value):
                compute_rsp += 1
            if want_p and int(dut.produce__ready.value):
                pi += 1
            if want_l and int(dut.link_in__ready.value):
                heapq.heappop(pending)
            if lr and int(dut.link_out__valid.value):
                f = unpack(link_l, int(dut.link_out__payload.value))
                link_out.append([k, f["dst_device"], f["addr"], f["op"], f["data"], f["tag"]])
                # We sent our stage s-1 chunk; the predecessor sends, for its stage s-1, the chunk we reduce at
                # stage s (same offset, same tag by symmetry), holding its running sum.
                stage = f["tag"] // tiles + 1
                off = f["addr"] - chunk_at(d, stage - 1) * cw
                c = chunk_at(d, stage)
                heapq.heappush(pending, (k + lat, seq, {"addr": c * cw + off, "tag": f["tag"],
                                                        "data": running[c][stage][off]}))
                seq += 1
            if sr and int(dut.status__valid.value):
                s = unpack(status_l, int(dut.status__payload.value))
                statuses.append([k, s["desc"], s["tag"], s["error"]])
            k += 1
        for name in ("compute__cmd__valid", "produce__valid", "link_in__valid", "link_out__ready",
                     "status__ready"):
            getattr(dut, name).value = 0
        return {"statuses": statuses, "link_out": link_out, "cycles": k, "compute_responses": compute_rsp,
                "compute_reads": ci}

    async def replay_open(self) -> dict:
        """Open-loop replay. Cycle 0 is the next falling edge; inputs are set there and handshakes read once
        everything has settled (ReadOnly). The run ends at the first cycle in which every row was taken, every
        compute read answered and ``idle`` is high: ``cycles`` is that cycle's number."""
        dut, job = self.dut, self.job
        compute, produce, link = job["compute"], job["produce"], job["link_in"]
        n_reads = sum(1 for row in compute if not row[2])
        link_ready, status_ready, compute_ready = (ReadyPattern(*job[k]) for k in
                                                   ("link_ready", "status_ready", "compute_ready"))
        link_l, status_l, pkt_l = self.dp.link_layout(), self.dp.status_layout(), self.rp.packet_layout()
        link_out, statuses, compute_rsp = [], [], []
        ci = pi = li = 0
        k = 0
        while True:
            await FallingEdge(dut.clk)
            if k > job["max_cycles"]:
                raise AssertionError(f"replay did not finish: compute {ci}/{len(compute)}, produce {pi}/"
                                     f"{len(produce)}, link {li}/{len(link)}, responses {len(compute_rsp)}/{n_reads}")
            want_c = ci < len(compute) and compute[ci][0] <= k
            if want_c:
                _, addr, write, data = compute[ci]
                dut.compute__cmd__payload.value = pack(self.mem_l, addr=addr, write=write, data=data)
            dut.compute__cmd__valid.value = int(want_c)
            want_p = pi < len(produce) and produce[pi][0] <= k
            if want_p:
                _, addr, op, data, tag = produce[pi]
                dut.produce__payload.value = pack(pkt_l, addr=addr, op=op, data=data, tag=tag)
            dut.produce__valid.value = int(want_p)
            want_l = li < len(link) and link[li][0] <= k
            if want_l:
                _, addr, op, data, tag = link[li]
                dut.link_in__payload.value = pack(link_l, dst_device=0, addr=addr, op=op, data=data, tag=tag)
            dut.link_in__valid.value = int(want_l)
            lr, sr, cr = link_ready(k), status_ready(k), compute_ready(k)
            dut.link_out__ready.value = int(lr)
            dut.status__ready.value = int(sr)
            dut.compute__rsp__ready.value = int(cr)
            await ReadOnly()
            if (ci == len(compute) and pi == len(produce) and li == len(link) and len(compute_rsp) == n_reads
                    and int(dut.idle.value)):
                break
            if want_c and int(dut.compute__cmd__ready.value):
                ci += 1
            if cr and int(dut.compute__rsp__valid.value):
                compute_rsp.append([k, int(dut.compute__rsp__payload.value)])
            if want_p and int(dut.produce__ready.value):
                pi += 1
            if want_l and int(dut.link_in__ready.value):
                li += 1
            if lr and int(dut.link_out__valid.value):
                f = unpack(link_l, int(dut.link_out__payload.value))
                link_out.append([k, f["dst_device"], f["addr"], f["op"], f["data"], f["tag"]])
            if sr and int(dut.status__valid.value):
                s = unpack(status_l, int(dut.status__payload.value))
                statuses.append([k, s["desc"], s["tag"], s["error"]])
            k += 1
        await FallingEdge(dut.clk)
        for name in ("link_out__ready", "status__ready", "compute__rsp__ready"):
            getattr(dut, name).value = 0
        return {"link_out": link_out, "statuses": statuses, "compute_rsp": compute_rsp, "cycles": k}

    async def read_tracker_status(self) -> dict[str, int]:
        """The tracker's status registers, read over ``tracker_cfg`` (``READ``) and ``tracker_cfg_rsp``."""
        dut, out = self.dut, {}
        dut.tracker_cfg_rsp__ready.value = 1
        for reg in StatusReg:
            await FallingEdge(dut.clk)
            dut.tracker_cfg__payload.value = pack(self.tp.cfg_layout(), op=CfgOp.READ, index=reg)
            dut.tracker_cfg__valid.value = 1
            await ReadOnly()
            while not int(dut.tracker_cfg__ready.value):
                await FallingEdge(dut.clk)
                await ReadOnly()
            await FallingEdge(dut.clk)
            dut.tracker_cfg__valid.value = 0
            await ReadOnly()
            while not int(dut.tracker_cfg_rsp__valid.value):
                await FallingEdge(dut.clk)
                await ReadOnly()
            out[reg.name.lower()] = int(dut.tracker_cfg_rsp__payload.value)
        return out

    async def read_back(self, addrs) -> list[list[int]]:
        dut = self.dut
        for _ in range(8):
            await FallingEdge(dut.clk)
        dut.tb_sel.value = 1
        dut.tb__rsp__ready.value = 1
        memory, issued = [], 0
        while len(memory) < len(addrs):
            await FallingEdge(dut.clk)
            if int(dut.tb__rsp__valid.value):
                memory.append([addrs[len(memory)], int(dut.tb__rsp__payload.value)])
            if issued < len(addrs):
                dut.tb__cmd__payload.value = pack(self.mem_l, addr=addrs[issued], write=0, data=0)
                dut.tb__cmd__valid.value = 1
                if int(dut.tb__cmd__ready.value):
                    issued += 1
            else:
                dut.tb__cmd__valid.value = 0
        return memory


@cocotb.test()
async def t3_device_cosim(dut) -> None:
    job = read_job()
    bench = _Bench(dut, job)
    cocotb.start_soon(Clock(dut.clk, 2, unit="ns", impl="gpi").start())
    dut.num_devices.value = job["devices"]
    dut.arb_mode.value, dut.arb_threshold.value, dut.arb_starvation_limit.value = job["arb"]
    dut.tracker_cfg_rsp__ready.value = 1
    await bench.reset()
    await bench.write_words(job["preload"])
    await bench.program(with_dma=True)
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
    bench = _Bench(dut, job)
    cocotb.start_soon(Clock(dut.clk, 2, unit="ns", impl="gpi").start())
    dut.num_devices.value = job["num_devices"]
    dut.arb_mode.value, dut.arb_threshold.value, dut.arb_starvation_limit.value = job["arb"]
    dut.tracker_cfg_rsp__ready.value = 1
    await bench.reset()
    await bench.write_words(job["preload"])
    await bench.program(with_dma=True)
    run = await bench.replay_open()
    tracker = await bench.read_tracker_status()
    memory = await bench.read_back(job["readback"])
    write_result(job, dict(run, tracker=tracker, memory=memory))
