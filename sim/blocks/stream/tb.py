"""cocotb testbench for the STREAM unit (`sim.blocks.stream.rtl.StreamHarness`).

Preloads the memory through the testbench port, replays the programs (each offered from its cycle) with seeded
backpressure on ``status``, records every status with its cycle, then reads the image back, all with the shared
drivers (`sim.rtl.drivers`). The scoreboard checks every status (tag, op, error) and the final image bit for bit
against the reference (`sim.blocks.stream.reference`), and compares the status cycles and the run length with
the cycle model (`sim.blocks.stream.model`): ``model_mismatches`` and ``model_max_abs_err`` go in the result,
the pytest side decides the bound. With ``reset_at`` the first replay is cut by a reset in the middle of the
transfers and the replay is run again from a fresh preload: the recorded result is the second run's.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge

from hw.memory import MemoryParams
from hw.stream import StreamParams
from sim.blocks.stream.model import run_stream
from sim.blocks.stream.reference import run_programs
from sim.core.stimulus import ReadyPattern
from sim.rtl.drivers import MemPortDriver, StreamSink, StreamSource, act, idle
from sim.rtl.tb_common import clear, read_job, reset, start_clock, write_result

_FIELDS = ("op", "a", "b", "c", "n", "q", "tag")


async def _replay(dut, p: StreamParams, programs: np.ndarray, ready: ReadyPattern, max_cycles: int,
                  stop_at: int | None) -> tuple[list, int]:
    """Cycle 0 is the next falling edge. Ends at the first cycle (returned) in which every program was taken and
    the unit is idle, at ``stop_at`` or after ``max_cycles``; the inputs are idle from that cycle on."""
    cols = [programs[f].tolist() for f in ("cycle", *_FIELDS)]
    prog = StreamSource(dut, "prog", p.program_layout()).extend(
        (row[0], dict(zip(_FIELDS, row[1:], strict=True))) for row in zip(*cols, strict=True))
    status = StreamSink(dut, "status", ready, p.status_layout())
    for k in range(max_cycles):
        await FallingEdge(dut.clk)
        if k == stop_at or (prog.done and int(dut.idle.value)):
            break
        await act(k, (prog, status))
    idle(prog, status)
    return status.rows("tag", "op", "error"), k


@cocotb.test()
async def stream_replay(dut) -> None:
    job = read_job()
    p, mem = StreamParams(**job["params"]), MemoryParams(**job["mem"])
    programs, image = np.load(job["programs"]), np.load(job["image"])
    ready = ReadyPattern(job["status_seed"], job["status_bp"])
    start_clock(dut)
    clear(dut, "prog__valid", "status__ready", "tb__cmd__valid", "tb__rsp__ready", "tb_sel")
    await reset(dut)
    port = MemPortDriver(dut, "tb", mem.addr_bits)
    preload = list(enumerate(image.tolist()))
    settle = mem.interval + mem.latency + 2
    work = int(np.sum(programs["n"].astype(np.int64))) * 3 if len(programs) else 0
    limit = 10_000 + (int(programs["cycle"][-1]) if len(programs) else 0) + 16 * work * mem.interval
    result: dict = {}
    if job["reset_at"] is not None:
        await port.preload(preload, settle=settle)
        cut, k = await _replay(dut, p, programs, ready, limit, job["reset_at"])
        busy = int(dut.idle.value) == 0
        await reset(dut)
        await FallingEdge(dut.clk)
        result.update(cut_statuses=len(cut), busy_before_reset=busy, idle_after_reset=int(dut.idle.value),
                      status_valid_after_reset=int(dut.status__valid.value))
    await port.preload(preload, settle=settle)
    status, cycles = await _replay(dut, p, programs, ready, limit, None)
    port.select()
    memory = np.array(await port.read(range(len(image))), dtype=np.uint32)
    np.save(job["result"].replace("result.json", "readback.npy"), memory)

    # Scoreboard: the reference's data, the model's cycles.
    want_image = image.copy()
    want_err = run_programs(p, want_image, programs)
    rows = np.array(status, dtype=np.int64).reshape(-1, 4)
    want = np.stack([programs["tag"].astype(np.int64), programs["op"].astype(np.int64),
                     want_err.astype(np.int64)], axis=1)
    status_ok = rows.shape[0] == len(programs) and bool(np.array_equal(rows[:, 1:], want))
    bad_words = np.flatnonzero(memory != want_image)
    if not status_ok:
        cocotb.log.error("scoreboard: statuses differ (%d for %d programs)", len(rows), len(programs))
    if len(bad_words):
        cocotb.log.error("scoreboard: %d words differ, first (addr, RTL, reference) %s", len(bad_words),
                         [(int(a), hex(int(memory[a])), hex(int(want_image[a]))) for a in bad_words[:4]])
    model, _ = run_stream(p, mem, programs, image, ready)
    result.update(status=status, cycles=cycles, status_ok=status_ok, word_mismatches=int(len(bad_words)),
                  model_cycles=model.cycles)
    if status_ok:
        err = rows[:, 0] - model.status[:, 0]
        result.update(model_mismatches=int(np.count_nonzero(err)) + int(cycles != model.cycles),
                      model_max_abs_err=int(np.abs(err).max()) if len(err) else 0)
    write_result(job, result)
    assert cycles < limit - 1, "the STREAM unit did not go idle"
    assert status_ok, "statuses differ from the reference"
    assert not len(bad_words), "final memory image differs from the reference"
    if job["reset_at"] is not None:
        assert result["busy_before_reset"], "the reset should hit the unit while it is busy"
        assert result["idle_after_reset"] == 1 and result["status_valid_after_reset"] == 0
