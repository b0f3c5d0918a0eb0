"""The Hogwild! commit-move co-simulation: the recorded window, the DMA stimulus and the data check without
Verilator (model and reference), then the whole co-simulation on the DMA engine RTL."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import sim.studies.hogwild.cosim as hc
from hw.dma import DmaError, DmaOp
from sim import exec as sx
from sim.blocks.dma.stimulus import check_stimulus
from sim.core import trace
from sim.core.config import HogwildConfig
from sw_stack.hogwild.rope import rotate_at

BACKPRESSURE = 0.3


@pytest.fixture(scope="module")
def window() -> hc.CommitWindow:
    return hc.record_window(HogwildConfig(), workers=2, steps=3)


@pytest.fixture(scope="module")
def stim(window: hc.CommitWindow) -> trace.Trace:
    return hc.build_stimulus(window, seed=3)


def _run(window: hc.CommitWindow, stim: trace.Trace, target: str = "model") -> sx.Result:
    return sx.run("dma", stim, target, hc.dma_params(window), sx.Stalls(3, BACKPRESSURE))


def _unpack_fp16(words: np.ndarray) -> np.ndarray:
    halves = np.stack([words & 0xFFFF, words >> 16], axis=-1).astype(np.uint16)
    return halves.reshape(-1).view(np.float16).astype(np.float32)


# --- packing and the recorded window ------------------------------------------------------------------------------

def test_words_hold_two_16_bit_values_low_half_first():
    x = np.array([1.0, -2.0, 0.5, 65504.0], np.float32)
    assert hc.pack_words(x, "fp16").tolist() == [0x3C00 | 0xC000 << 16, 0x3800 | 0x7BFF << 16]
    assert hc.pack_words(x[:2], "bf16").tolist() == [0x3F80 | 0xC000 << 16]
    assert hc.pack_words(x[:1], "fp32").tolist() == [0x3F800000]
    np.testing.assert_array_equal(_unpack_fp16(hc.pack_words(x, "fp16")), x)
    with pytest.raises(ValueError, match="whole words"):
        hc.pack_words(x[:3], "fp16")


def test_window_records_every_workers_commits_as_they_land(window: hc.CommitWindow):
    w, tw = window, window.token_words
    assert tw == 16 and w.capacity == hc.MIN_CAPACITY  # 2 KV heads x 16 fp16 values a token
    assert [sum(c.worker == k for c in w.commits) for k in range(2)] == [3, 3]
    # Commits land back to back at the end of the common block.
    ends = [w.common_before] + [c.dst + c.tokens for c in w.commits]
    assert [c.dst for c in w.commits] == ends[:-1] and ends[-1] == w.common_after == w.common_before + w.tokens_moved
    # The common block before the window is the one after it, cut at the window start.
    cut = w.common_before * tw
    np.testing.assert_array_equal(w.before[..., :cut], w.after[..., :cut])
    assert not w.before[..., cut:].any() and not w.after[..., w.common_after * tw:].any()
    # What each commit moves is the common block's rows it lands on (keys re-rotated), K and V of every layer.
    for c in w.commits:
        assert c.words.shape == (2, 2, c.tokens * tw)
        np.testing.assert_array_equal(c.words, w.after[..., c.dst * tw:(c.dst + c.tokens) * tw])


# --- the stimulus -------------------------------------------------------------------------------------------------

def test_descriptors_cover_each_commits_tokens_exactly_once(window: hc.CommitWindow, stim: trace.Trace):
    p = hc.dma_params(window)
    check_stimulus(p, stim)
    w, tw, d = window, window.token_words, stim["descriptors"]
    assert len(d) == 4 * len(w.commits) and (d["op"] == int(DmaOp.STORE)).all() and (d["dst_device"] == 0).all()
    assert d["index"].tolist() == list(range(len(d)))
    cover = np.zeros((2, 2, w.capacity), np.int64)  # per layer and K/V: descriptors writing each token
    staged = np.zeros(1 << p.addr_bits, np.int64)
    for row in d:
        i, rest = divmod(int(row["index"]), 4)
        layer, kind = divmod(rest, 2)
        c = w.commits[i]
        assert int(row["dst_tag"]) == i and int(row["length"]) == 4 * c.tokens * tw
        dst = int(row["dst_addr"]) // 4 - w.region(layer, kind)
        assert int(row["dst_addr"]) % 4 == 0 and dst % tw == 0
        cover[layer, kind, dst // tw:dst // tw + c.tokens] += 1
        assert dst // tw == c.dst
        src = int(row["src_addr"]) // 4
        assert src >= w.common_words  # staging lies past every common region
        staged[src:src + c.tokens * tw] += 1
        # The source holds the commit's rows as they land.
        pre = stim["memory"]
        at = np.searchsorted(pre["addr"], src)
        np.testing.assert_array_equal(pre["data"][at:at + c.tokens * tw], c.words[layer, kind])
    want = np.zeros(w.capacity, np.int64)
    want[w.common_before:w.common_after] = 1
    for layer in range(2):
        for kind in range(2):
            np.testing.assert_array_equal(cover[layer, kind], want)
    assert staged.max() == 1 and staged.sum() == len(stim["memory"]) == 4 * w.tokens_moved * tw
    assert len(np.unique(stim["memory"]["addr"])) == len(stim["memory"])


def test_triggers_come_in_commit_order_with_idles(stim: trace.Trace):
    t = stim["triggers"]
    assert t["desc"].tolist() == list(range(len(stim["descriptors"])))
    gaps = np.diff(t["cycle"].astype(np.int64))
    assert (gaps >= 1).all() and (gaps > 1).any()


def test_params_stay_fixed_for_the_default_window(window: hc.CommitWindow):
    """One Verilator build serves every default run: the window fits `DMA_BASE`."""
    assert hc.dma_params(window).as_dict() == hc.DMA_BASE
    assert window.memory_words <= 1 << hc.DMA_BASE["addr_bits"]


# --- the data check -----------------------------------------------------------------------------------------------

def test_model_and_reference_packets_rebuild_the_common_block(window: hc.CommitWindow, stim: trace.Trace):
    model = _run(window, stim)
    link = model.tables["link"]
    assert len(link) == 4 * window.tokens_moved * window.token_words
    assert hc.data_mismatches(window, link) == 0
    done, errors = hc.status_cycles(len(stim["descriptors"]), model.tables["status"])
    assert errors == 0 and None not in done
    assert model.cycles > len(link) + 1000  # the link's backpressure shows in the run's length
    assert hc.data_mismatches(window, _run(window, stim, "reference").tables["link"]) == 0
    # Nothing moved: every word of the window's commits is missing.
    assert hc.data_mismatches(window, link[:0]) == int(np.count_nonzero(window.before != window.after))


def test_check_catches_a_corrupted_packet(window: hc.CommitWindow, stim: trace.Trace):
    link = _run(window, stim).tables["link"]
    for col, value, want in (("data", None, 1), ("addr", window.common_words + 5, 2), ("op", int(DmaOp.ADD_I32), 2),
                             ("dst_device", 1, 2)):
        bad = link.copy()
        k = len(bad) // 3
        bad[col][k] = bad[col][k] ^ 1 if value is None else value
        # A stray packet also leaves its word unwritten: the packet and the word both count.
        assert hc.data_mismatches(window, bad) == want, col


def test_check_catches_a_wrong_destination_offset(window: hc.CommitWindow, stim: trace.Trace):
    bad = copy.deepcopy(stim)
    d = bad["descriptors"]
    d["dst_addr"][5] += 4 * window.token_words  # one token late
    assert hc.data_mismatches(window, _run(window, bad).tables["link"]) > 0


def test_check_catches_keys_moved_without_their_rotation(window: hc.CommitWindow):
    """Staging a commit's keys at their old block-local positions (the rotation kernel skipped) is caught."""
    c = window.commits[2]
    k = _unpack_fp16(c.words[1, 0]).reshape(c.tokens, window.shape.kv_heads, window.shape.head_dim)
    local = rotate_at(k.transpose(1, 0, 2), -c.dst, window.shape.rope_base).transpose(1, 0, 2)
    words = c.words.copy()
    words[1, 0] = hc.pack_words(local.astype(np.float16).astype(np.float32), "fp16")
    commits = list(window.commits)
    commits[2] = dataclasses.replace(c, words=words)
    bad = dataclasses.replace(window, commits=commits)
    mism = hc.data_mismatches(window, _run(bad, hc.build_stimulus(bad, seed=3), "reference").tables["link"])
    assert 0 < mism <= c.tokens * window.token_words


def test_status_check_counts_errors_and_missing_statuses():
    st = trace.empty("dma_status", 3)
    st["desc"], st["cycle"], st["error"] = [0, 2, 2], [10, 20, 30], [0, 0, int(DmaError.MISALIGNED)]
    done, errors = hc.status_cycles(3, st)
    assert done == [10, None, 30] and errors == 3  # one error status, descriptor 1 silent, descriptor 2 twice


def test_stall_cycles_match_the_ready_pattern():
    stalls = sx.Stalls(7, 0.3)
    r = stalls.ready(0)
    assert hc.stall_cycles(r.seed, r.prob, 500) == sum(not r(t) for t in range(500)) > 0
    assert hc.stall_cycles(r.seed, 0.0, 500) == 0


# --- the whole co-simulation --------------------------------------------------------------------------------------

@pytest.mark.rtl
def test_commit_moves_on_the_dma_rtl(tmp_path: Path):
    res = hc.run_cosim(HogwildConfig(), tmp_path, seed=2, backpressure=BACKPRESSURE)
    json.dumps(res, allow_nan=False)
    keys = {"description", "workers", "commits", "tokens_moved", "descriptors", "words_moved", "words_checked",
            "data_mismatches", "model_data_mismatches", "status_errors", "max_cycle_error", "mean_cycle_error",
            "missing_completions", "cycles_rtl", "cycles_model", "link_backpressure", "status_backpressure", "seed"}
    assert keys <= set(res)
    assert res["data_mismatches"] == res["model_data_mismatches"] == res["status_errors"] == 0
    assert res["max_cycle_error"] == res["mean_cycle_error"] == 0.0 and res["missing_completions"] == 0
    assert res["cycles_rtl"] == res["cycles_model"]
    assert res["rtl_vs_model"]["data_mismatches"] == res["rtl_vs_model"]["cycle_mismatches"] == 0
    assert min(res["commits_per_worker"]) >= 3 and res["commits"] == sum(res["commits_per_worker"])
    assert res["descriptors"] == 4 * res["commits"] and res["words_moved"] == 16 * 4 * res["tokens_moved"]
    assert res["words_checked"] > res["words_moved"] > 0
    assert res["link_backpressure"] == res["status_backpressure"] == BACKPRESSURE
    assert res["link_stall_cycles"] > 0.2 * res["cycles_rtl"]  # the link really stalled
