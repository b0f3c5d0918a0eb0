"""Replay harness for the tracker RTL: a Verilog top that replays a trace from memory at full Verilator speed.

Neither Python nor a file operation is in the cycle loop: the harness keeps ``RING`` request records in memory,
refilled half a ring at a time by one ``$fread``, stalls the trigger output with the same hash as
`sim.core.stimulus.ReadyPattern`, packs the triggers into one vector of ``TBUF`` records written by one
``$fwrite`` when full and at the end, and raises ``done`` when the trace is consumed, the tracker is idle and the
triggers are written. Python (`sim.rtl.replay_tb`) only waits for ``done``. What is left is Verilator's
byte-at-a-time file I/O (``fgetc``, most of the run) and the design: `sim.exec.bench` measures the harness
against a bare C++ loop (`bare_main`) on the same Verilog.

Clock: the tracker has no negative-edge or timed logic, so with ``BURST`` > 0 the clock is toggled from the NBA
region, ``BURST`` cycles per simulated nanosecond: Verilator's timing scheduler and cocotb's main loop (about
0.3 us per time step) run once per ``BURST`` cycles instead of twice a cycle (this alone made the harness
2.5 times faster). ``BURST`` = 0 is the plain clock (``#1`` per edge), built for wave dumps, where every edge needs
its own time step.

Plusargs: ``+program=FILE +requests=FILE +big=FILE +n_requests=N +triggers=FILE +bp_seed=N +bp_thresh=N``
(decimal). Files (`write_inputs`, `read_triggers`):

* program: hex text, one ``entry threshold desc enable rearm`` line per command (a few hundred at most);
* requests: `request_record_bytes` big-endian records: the cycles since the previous request (the first: since
  cycle 0) in one byte, then the DUT's ``req.payload`` (packed by Python) in whole bytes; a gap of 255 cycles or
  more is stored as 255 plus the next 64-bit big-endian word of the big file;
* triggers: little-endian records of the trigger payload (32 or 64 bits) then the cycle it left (64 bits),
  written in blocks of ``TBUF``: the reader keeps the first ``n_trig`` records.

Timing contract: reset, the program commands back to back on ``cfg``, one idle cycle, then cycle 0 (the model's
programming takes no time). In cycle ``k`` the next request is valid if its cycle is ``<= k``; a trigger is
taken in cycle ``k`` if ``trigger.valid`` and ``mix32(k ^ bp_seed) >> 16 >= bp_thresh``. ``cycle`` ends as the
first cycle every request is in and the tracker is idle, plus one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from amaranth.lib import data

from hw.tracker import CfgOp, TrackerParams, TrackTrigger
from hw.verilog import generate
from sim.rtl.replay_top import MIX32, REPLAY_BUILD_ARGS

TOP = "tracker_replay"
RING = 1 << 15  # request records in memory (two halves); a power of two
TBUF = 512  # trigger records collected before a block write (one packed vector, under 64 Kbit)
BURST = 1024  # clock cycles per simulated time step (0: one time step per clock edge)


def build_args(burst: int = BURST) -> tuple[str, ...]:
    """Verilator arguments of the harness build (see the module docstring)."""
    return (*REPLAY_BUILD_ARGS, "--no-public-flat-rw", "--converge-limit", str(4 * burst + 100))


def time_limit_ns(max_cycles: int, burst: int = BURST) -> int:
    """Simulated time (ns) the harness needs at most for ``max_cycles`` clock cycles."""
    return max_cycles // burst + 100 if burst else 2 * max_cycles + 100


def _pack(layout: data.StructLayout, values: dict[str, str]) -> str:
    """A Verilog concatenation placing each expression at its field's offset (LSB first)."""
    parts = []
    for name, fld in layout:
        expr = values.get(name, "0")
        parts.append(f"{fld.width}'d{expr}" if expr.isdigit() else f"{expr}[{fld.width - 1}:0]")
    return "{" + ", ".join(reversed(parts)) + "}"


def request_record_bytes(p: TrackerParams) -> int:
    """Bytes of a request record: the cycles since the previous request (one byte, 255: see the big file),
    then the payload in whole bytes."""
    rw = p.request_layout().size
    if rw > 128:
        raise ValueError(f"the replay harness carries requests of up to 128 bits, not {rw}")
    return 1 + (rw + 7) // 8


def trigger_record_bits(p: TrackerParams) -> int:
    """Bits of a trigger record: the payload in 32 (or 64) bits, then the cycle in 64."""
    tw = p.trigger_layout().size
    if tw > 64:
        raise ValueError(f"the replay harness carries triggers of up to 64 bits, not {tw}")
    return 96 if tw <= 32 else 128


def harness_verilog(p: TrackerParams, burst: int = BURST) -> str:
    """The replay top (see the module docstring); ``burst`` = 0: the plain clock."""
    rw, tw = p.request_layout().size, p.trigger_layout().size
    rb, tb, tbuf = 8 * request_record_bytes(p), trigger_record_bits(p), TBUF
    cfg = _pack(p.cfg_layout(), {"op": str(int(CfgOp.PROGRAM)), "index": "f_entry", "threshold": "f_thr",
                                 "desc": "f_desc", "enable": "f_en", "rearm": "f_rearm"})
    ring_bits = RING.bit_length() - 1
    pad = tb - 64 - tw
    trig_record = f"{{cycle, {pad}'d0, trig_payload}}" if pad else "{cycle, trig_payload}"
    if burst:
        clock_gen = ("  always #1 step = step + 64'd1;\n"
                     "  always @(step or edges)\n"
                     f"    if (!done && edges < step * 64'd{2 * burst}) begin clk <= ~clk; edges <= edges + 64'd1; end")
    else:
        clock_gen = "  always #1 clk = ~clk;"
    return f"""// Generated by sim/blocks/tracker/harness.py: trace replay top for track_trigger. Simulation only.
module {TOP} (  // the ports are the only signals cocotb sees (built without --public-flat-rw)
  output reg  clk /*verilator public_flat_rd*/,
  output reg  rst /*verilator public_flat_rd*/,
  output reg  done /*verilator public_flat_rd*/,
  output reg  [63:0] cycle /*verilator public_flat_rd*/,
  output reg  [31:0] n_req /*verilator public_flat_rd*/,
  output reg  [31:0] n_trig /*verilator public_flat_rd*/,
  output wire [1:0] errors /*verilator public_flat_rd*/
);
  localparam RING = {RING}, HALF = {RING // 2}, RB = {rb}, TBUF = {tbuf}, TB = {tb};
  reg [8*1024-1:0] program_path, requests_path, big_path, triggers_path;
  reg [31:0] bp_seed, bp_thresh, n_total;
  integer fp, fr, fb, fo, rc, t_fill;
  reg [63:0] big;
  reg [63:0] f_entry, f_thr, f_desc, f_en, f_rearm;
  reg [RB-1:0] ring [0:RING-1];        // {{delta, payload}}: records n_req .. n_req + RING - 1 of the file
  reg [TBUF*TB-1:0] tpack;             // {{cycle, payload}} of up to TBUF triggers, written with one $fwrite

  // Clock and reset. With BURST > 0 the clock toggles from the NBA region, BURST cycles per time step, so the
  // timing scheduler and the cocotb main loop run once per BURST cycles instead of twice a cycle; with
  // BURST = 0 it is the plain clock, one time step per edge (what a wave dump needs).
  localparam BURST = {burst};
  reg [63:0] step, edges;
  reg [2:0] rst_count;
  initial begin
    clk = 1'b0; rst = 1'b1; rst_count = 3'd0; step = 64'd0; edges = 64'd0;
  end
{clock_gen}
  always @(posedge clk) begin  // synchronous reset for the first four cycles
    if (rst_count == 3'd4) rst <= 1'b0;
    else rst_count <= rst_count + 3'd1;
  end
  initial begin
    if (!$value$plusargs("program=%s", program_path)) $fatal(1, "missing +program=FILE");
    if (!$value$plusargs("requests=%s", requests_path)) $fatal(1, "missing +requests=FILE");
    if (!$value$plusargs("big=%s", big_path)) $fatal(1, "missing +big=FILE");
    if (!$value$plusargs("n_requests=%d", n_total)) $fatal(1, "missing +n_requests=N");
    if (!$value$plusargs("triggers=%s", triggers_path)) $fatal(1, "missing +triggers=FILE");
    if (!$value$plusargs("bp_seed=%d", bp_seed)) bp_seed = 0;
    if (!$value$plusargs("bp_thresh=%d", bp_thresh)) bp_thresh = 0;
    fp = $fopen(program_path, "r");
    fr = $fopen(requests_path, "rb");
    fb = $fopen(big_path, "rb");
    fo = $fopen(triggers_path, "wb");
    if (fp == 0 || fr == 0 || fb == 0 || fo == 0) $fatal(1, "cannot open the replay files");
    rc = $fread(ring, fr, 0, RING);
    t_fill = 0;
  end

{MIX32}
  localparam PROGRAM = 2'd0, RUN = 2'd1, DONE = 2'd2;
  reg [1:0] phase;
  reg started;
  reg p_valid;
  reg [{p.cfg_layout().size - 1}:0] p_payload;
  reg r_valid;
  reg [63:0] r_cycle;
  reg [{rw - 1}:0] r_payload;

  wire cfg_ready, req_ready, trig_valid, idle;
  wire [{tw - 1}:0] trig_payload;
  wire cfg_valid = started && phase == PROGRAM && p_valid;
  wire req_valid = phase == RUN && r_valid && cycle >= r_cycle;
  wire [31:0] bp_hash = mix32(cycle[31:0] ^ bp_seed);
  wire trig_ready = phase == RUN && {{16'd0, bp_hash[31:16]}} >= bp_thresh;
  wire [31:0] next = n_req + 32'd1;
  wire [{ring_bits - 1}:0] next_slot = next[{ring_bits - 1}:0];

  track_trigger dut (
    .clk(clk), .rst(rst),
    .cfg__valid(cfg_valid), .cfg__ready(cfg_ready), .cfg__payload(p_payload),
    .cfg_rsp__ready(1'b1), .cfg_rsp__valid(), .cfg_rsp__payload(),
    .req__valid(req_valid), .req__ready(req_ready), .req__payload(r_payload),
    .trigger__valid(trig_valid), .trigger__ready(trig_ready), .trigger__payload(trig_payload),
    .errors(errors), .idle(idle)
  );

  task automatic next_program;
    begin
      rc = $fscanf(fp, "%h %h %h %h %h\\n", f_entry, f_thr, f_desc, f_en, f_rearm);
      p_valid <= rc == 5;
      p_payload <= {cfg};
    end
  endtask

  task automatic present(input [{ring_bits - 1}:0] slot);  // the request in ring[slot] is next
    reg [63:0] delta;
    begin
      delta = {{56'd0, ring[slot][RB-1:RB-8]}};
      if (delta == 64'd255) begin  // a long gap: 255 plus the next word of the big file
        rc = $fread(big, fb);
        delta = delta + big;
      end
      r_cycle <= r_cycle + delta;
      r_payload <= ring[slot][{rw - 1}:0];
    end
  endtask

  task automatic write_triggers;  // a whole block: the reader keeps the first n_trig records
    begin
      if (t_fill != 0) $fwrite(fo, "%u", tpack);
      t_fill = 0;
    end
  endtask

  always @(posedge clk) begin
    if (rst) begin
      started <= 1'b0; phase <= PROGRAM; done <= 1'b0; cycle <= 64'd0; n_req <= 32'd0; n_trig <= 32'd0;
      p_valid <= 1'b0; r_valid <= 1'b0; r_cycle <= 64'd0;
    end else if (!started) begin
      started <= 1'b1;
      next_program();
    end else if (phase == PROGRAM) begin
      if (p_valid && cfg_ready) next_program();
      if (!p_valid) begin
        phase <= RUN;
        r_valid <= n_total != 32'd0;
        present(0);
      end
    end else if (phase == RUN) begin
      cycle <= cycle + 64'd1;
      if (req_valid && req_ready) begin
        n_req <= next;
        r_valid <= next != n_total;
        present(next_slot);
        // Crossed into the other half of the ring: refill the half just consumed with the next records.
        if (next_slot[{ring_bits - 2}:0] == 0) rc = $fread(ring, fr, next_slot == 0 ? HALF : 0, HALF);
      end
      if (trig_valid && trig_ready) begin
        n_trig <= n_trig + 32'd1;
        tpack[t_fill*TB +: TB] = {trig_record};
        t_fill = t_fill + 1;
        if (t_fill == TBUF) write_triggers();
      end
      if (!r_valid && idle) begin
        write_triggers();
        $fflush(fo);
        phase <= DONE;
        done <= 1'b1;
      end
    end
  end
endmodule
"""


def sources(p: TrackerParams, burst: int = BURST) -> dict[str, str]:
    """Verilog sources of the harness build: the tracker and the harness top."""
    return {"track_trigger.v": generate("track_trigger", TrackTrigger(p)), f"{TOP}.v": harness_verilog(p, burst)}


def _field_words(layout: data.StructLayout, values: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(high, low) 64-bit words of ``n`` payloads packed as ``layout`` (LSB first, each value cut to its width)."""
    hi, lo = np.zeros(n, np.uint64), np.zeros(n, np.uint64)
    for name, fld in layout:
        if name not in values:
            continue
        v = np.asarray(values[name]).astype(np.uint64) & np.uint64((1 << fld.width) - 1)
        if fld.offset >= 64:
            hi |= v << np.uint64(fld.offset - 64)
        else:
            lo |= v << np.uint64(fld.offset)
            if fld.offset + fld.width > 64:
                hi |= v >> np.uint64(64 - fld.offset)
    return hi, lo


def write_inputs(directory: Path, params: TrackerParams, program: np.ndarray, requests: np.ndarray
                 ) -> tuple[Path, Path, Path]:
    """Write the harness's program, request and long-gap files; see the module docstring."""
    directory.mkdir(parents=True, exist_ok=True)
    prog, reqs, big = directory / "program.hex", directory / "requests.bin", directory / "requests_big.bin"
    cols = np.stack([program[c].astype(np.uint64) for c in ("entry", "threshold", "desc", "enable", "rearm")],
                    axis=1) if len(program) else np.zeros((0, 5), np.uint64)
    np.savetxt(prog, cols, fmt="%x")
    cyc = requests["cycle"].astype(np.uint64)
    if len(cyc) and np.any(cyc[1:] < cyc[:-1]):
        raise ValueError("the harness takes requests sorted by cycle")
    delta = np.diff(cyc, prepend=np.uint64(0))
    long = delta >= 255
    (delta[long] - np.uint64(255)).astype(">u8").tofile(big)
    hi, lo = _field_words(params.request_layout(), {c: requests[c] for c in ("tag", "addr", "kind", "size")},
                          len(requests))
    words = np.empty((len(requests), 4), ">u4")  # the payload in 128 bits, big-endian
    words[:, 0], words[:, 1] = hi >> np.uint64(32), hi & np.uint64(0xFFFFFFFF)
    words[:, 2], words[:, 3] = lo >> np.uint64(32), lo & np.uint64(0xFFFFFFFF)
    nb = request_record_bytes(params)
    rec = np.empty((len(requests), nb), np.uint8)
    rec[:, 0] = np.minimum(delta, 255)
    rec[:, 1:] = words.view(np.uint8).reshape(len(requests), 16)[:, 16 - (nb - 1):]
    rec.tofile(reqs)
    return prog, reqs, big


def read_triggers(path: Path, params: TrackerParams, count: int) -> np.ndarray:
    """The first ``count`` records of the harness's trigger file as an (n, 3) uint64 array (cycle, desc, entry)."""
    wide = trigger_record_bits(params) == 128
    rec = np.dtype([("payload", "<u8" if wide else "<u4"), ("cycle", "<u8")])
    raw = np.fromfile(path, rec, count=count)
    if len(raw) != count:
        raise ValueError(f"{path} holds {len(raw)} triggers, expected {count}")
    tl = params.trigger_layout()
    out = np.empty((count, 3), np.uint64)
    out[:, 0] = raw["cycle"]
    payload = raw["payload"].astype(np.uint64)
    for col, name in ((1, "desc"), (2, "entry")):
        fld = tl[name]
        out[:, col] = (payload >> np.uint64(fld.offset)) & np.uint64((1 << fld.width) - 1)
    return out


# The bare Verilator loop ------------------------------------------------------------------------------------
# `sim.rtl.bare`: the same stimulus, the same stalls and the same cycle numbering as the replay top, driven by a
# C++ main instead of Verilog and cocotb: the yardstick of the replay harness (`sim.exec.bench`).

def _port(name: str) -> str:
    """The C++ member name Verilator gives a top-level port (``__`` is escaped)."""
    return "top->" + name.replace("__", "___05F")


def _set_port(name: str, width: int, value: str) -> str:
    """C++ statements setting a ``width``-bit input port from a 128-bit ``value`` expression."""
    if width > 128:
        raise ValueError(f"the bare loop packs ports of up to 128 bits, not {width} ({name})")
    if width <= 64:
        return f"{_port(name)} = (uint64_t)({value});"
    return " ".join(f"{_port(name)}[{w}] = (uint32_t)(({value}) >> {32 * w});" for w in range((width + 31) // 32))


def _get_port(name: str, width: int) -> str:
    """A 128-bit C++ expression reading a ``width``-bit output port."""
    if width > 128:
        raise ValueError(f"the bare loop reads ports of up to 128 bits, not {width} ({name})")
    if width <= 64:
        return f"(u128)({_port(name)})"
    return " | ".join(f"((u128){_port(name)}[{w}] << {32 * w})" for w in range((width + 31) // 32))


def _pack_cpp(layout: data.StructLayout, values: dict[str, str]) -> str:
    """A 128-bit C++ expression placing each value at its field's offset, masked to the field's width."""
    parts = [f"(((u128)({values[name]}) & (((u128)1 << {fld.width}) - 1)) << {fld.offset})"
             for name, fld in layout if name in values]
    return " | ".join(parts) if parts else "0"


def bare_main(p: TrackerParams) -> str:
    """C++ main of the bare loop: ``bare PROGRAM REQUESTS TRIGGERS BP_SEED BP_THRESH``.

    Inputs are little-endian uint64 records: program ``entry threshold desc enable rearm``, requests ``cycle tag
    addr kind size``; the output is ``cycle desc entry`` uint64 records. Timing contract (that of the replay
    top): reset, the program entries back to back on ``cfg``, one idle cycle, then cycle 0; in cycle ``k`` the
    next request is valid if its cycle is ``<= k``, the trigger output is ready if ``mix32(k ^ seed) >> 16 >=
    thresh``; the loop ends in the first cycle every request is in and the tracker is idle, and reports
    ``cycles`` = that cycle + 1.
    """
    cl, rl, tl = p.cfg_layout(), p.request_layout(), p.trigger_layout()
    cfg = _pack_cpp(cl, {"op": str(int(CfgOp.PROGRAM)), "index": "pr[0]", "threshold": "pr[1]", "desc": "pr[2]",
                         "enable": "pr[3]", "rearm": "pr[4]"})
    req = _pack_cpp(rl, {"tag": "rq[1]", "addr": "rq[2]", "kind": "rq[3]", "size": "rq[4]"})
    desc_f, entry_f = tl["desc"], tl["entry"]
    return f"""// Generated by sim/blocks/tracker/harness.py: bare Verilator loop for track_trigger (bench yardstick).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "Vtrack_trigger.h"
#include "verilated.h"

typedef unsigned __int128 u128;

static std::vector<uint64_t> load(const char* path) {{
    std::vector<uint64_t> v;
    FILE* f = std::fopen(path, "rb");
    if (!f) {{ std::perror(path); std::exit(2); }}
    std::fseek(f, 0, SEEK_END);
    long n = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    v.resize(n / 8);
    if (n && std::fread(v.data(), 8, v.size(), f) != v.size()) {{ std::perror(path); std::exit(2); }}
    std::fclose(f);
    return v;
}}

static inline uint32_t mix32(uint32_t x) {{
    x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
    return x;
}}

int main(int argc, char** argv) {{
    if (argc != 6) {{ std::fprintf(stderr, "usage: bare PROGRAM REQUESTS TRIGGERS BP_SEED BP_THRESH\\n"); return 2; }}
    const std::vector<uint64_t> prog = load(argv[1]), reqs = load(argv[2]);
    const uint32_t seed = (uint32_t)std::strtoul(argv[4], nullptr, 10);
    const uint32_t thresh = (uint32_t)std::strtoul(argv[5], nullptr, 10);
    const size_t np = prog.size() / 5, nr = reqs.size() / 5;
    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vtrack_trigger>(ctx.get());
    auto tick = [&]() {{ top->clk = 0; top->eval(); top->clk = 1; top->eval(); }};

    top->cfg___05Fvalid = 0; top->req___05Fvalid = 0; top->trigger___05Fready = 0; top->cfg_rsp___05Fready = 1;
    top->rst = 1;
    for (int i = 0; i < 3; ++i) tick();
    top->rst = 0;
    for (size_t j = 0; j < np; ++j) {{
        const uint64_t* pr = &prog[5 * j];
        {_set_port("cfg__payload", cl.size, cfg)}
        top->cfg___05Fvalid = 1;
        for (;;) {{
            top->clk = 0; top->eval();
            const bool taken = top->cfg___05Fready;
            top->clk = 1; top->eval();
            if (taken) break;
        }}
    }}
    top->cfg___05Fvalid = 0;
    tick();  // the replay top's PROGRAM -> RUN cycle

    std::vector<uint64_t> trig;
    trig.reserve(3 * nr / 2 + 16);
    size_t i = 0, presented = (size_t)-1;
    uint64_t k = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (;; ++k) {{
        const bool valid = i < nr && reqs[5 * i] <= k;
        if (valid && presented != i) {{
            const uint64_t* rq = &reqs[5 * i];
            {_set_port("req__payload", rl.size, req)}
            presented = i;
        }}
        const bool ready = (mix32((uint32_t)k ^ seed) >> 16) >= thresh;
        top->req___05Fvalid = valid;
        top->trigger___05Fready = ready;
        top->clk = 0; top->eval();
        if (i == nr && top->idle) break;
        if (valid && top->req___05Fready) ++i;
        if (ready && top->trigger___05Fvalid) {{
            const u128 t = {_get_port("trigger__payload", tl.size)};
            trig.push_back(k);
            trig.push_back((uint64_t)(t >> {desc_f.offset}) & ((1ull << {desc_f.width}) - 1));
            trig.push_back((uint64_t)(t >> {entry_f.offset}) & ((1ull << {entry_f.width}) - 1));
        }}
        top->clk = 1; top->eval();
    }}
    const double loop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    FILE* f = std::fopen(argv[3], "wb");
    if (!f || (trig.size() && std::fwrite(trig.data(), 8, trig.size(), f) != trig.size())) {{
        std::perror(argv[3]); return 2;
    }}
    std::fclose(f);
    top->final();
    std::printf("cycles=%llu\\nrequests=%zu\\ntriggers=%zu\\nerrors=%u\\nloop_s=%.9f\\n", (unsigned long long)(k + 1),
                i, trig.size() / 3, (unsigned)top->errors, loop_s);
    return 0;
}}
"""


def write_bare_inputs(directory: Path, program: np.ndarray, requests: np.ndarray) -> tuple[Path, Path]:
    """The bare loop's input files (little-endian uint64 records, see `bare_main`)."""
    directory.mkdir(parents=True, exist_ok=True)
    prog, reqs = directory / "program.u64", directory / "requests.u64"
    p = np.empty((len(program), 5), "<u8")
    for j, c in enumerate(("entry", "threshold", "desc", "enable", "rearm")):
        p[:, j] = program[c]
    r = np.empty((len(requests), 5), "<u8")
    for j, c in enumerate(("cycle", "tag", "addr", "kind", "size")):
        r[:, j] = requests[c]
    p.tofile(prog)
    r.tofile(reqs)
    return prog, reqs
