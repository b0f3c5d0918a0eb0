"""The Hogwild! driver and `llmarch hogwild generate`: W = 1 is a plain decoder, determinism, commits, checks."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_checkpoint import TINY_SHAPE, make_checkpoint

from sim.cli import main
from sim.core.config import HOGWILD_LAYOUTS
from sw_stack.hogwild.cache import SharedCache
from sw_stack.hogwild.decoder import Decoder, random_weights
from sw_stack.hogwild.generate import ByteTokenizer, Hogwild, PromptTemplate


def _run(layout: str, workers: int = 3, seed: int = 5, max_tokens: int = 20, **kw) -> Hogwild:
    dec = Decoder(TINY_SHAPE, random_weights(TINY_SHAPE, seed, "fp32"))
    hw = Hogwild(dec, SharedCache(TINY_SHAPE, workers, layout), ByteTokenizer(), layout=layout, **kw)
    hw.result = hw.run("Sum the odd numbers.", max_tokens)
    return hw


@pytest.mark.parametrize("layout", HOGWILD_LAYOUTS)
def test_one_worker_reproduces_a_plain_decoder(layout):
    """Invariant (b): with W = 1 every step's logits equal a plain single-sequence decoder's over the same tokens,
    commits included (a commit re-rotates keys but changes no position)."""
    dec = Decoder(TINY_SHAPE, random_weights(TINY_SHAPE, 3, "fp32"))
    cache = SharedCache(TINY_SHAPE, 1, layout)
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, TINY_SHAPE.vocab, 11)
    tokens = list(prompt)
    got = [dec.prefill(prompt, cache)]
    for i in range(14):
        t = int(rng.integers(0, TINY_SHAPE.vocab))
        tokens.append(t)
        got.append(dec.step(np.array([t]), cache)[0])
        if layout != "contiguous" and i % 5 == 4:
            cache.commit(0)
    want = dec.forward_sequence(np.array(tokens))[len(prompt) - 1:]
    err = np.linalg.norm(np.array(got) - want, axis=1) / np.linalg.norm(want, axis=1)
    assert err.max() < 1e-4


def test_generation_is_deterministic_for_a_seed():
    a, b = _run("combined", temperature=0.8), _run("combined", temperature=0.8)
    assert [w.tokens for w in a.workers] == [w.tokens for w in b.workers]
    c = _run("combined", temperature=0.8, seed=6)
    assert [w.tokens for w in c.workers] != [w.tokens for w in a.workers]


def test_steps_commit_with_headers_and_checks():
    hw = _run("combined", workers=2, max_tokens=30, step_tokens=8, check_every=12)
    res, tok = hw.result, hw.tok
    assert res.commits >= 2 * 3
    history = tok.decode(res.common[res.prompt_tokens:])
    assert "**Alice [1]:** " in history and "**Bob [2]:** " in history
    assert sum(w.steps - 1 for w in hw.workers) == res.commits
    # every commit moved one worker block; the cache's common block holds exactly the driver's common tokens
    assert hw.cache.lengths()[0] == len(res.common)
    assert all(hw.cache.lengths()[1 + i] == len(w.block) for i, w in enumerate(hw.workers))
    check = tok.encode(PromptTemplate().check)
    assert any(w.tokens[i:i + len(check)] == check for w in hw.workers for i in range(len(w.tokens)))


def test_contiguous_never_commits():
    hw = _run("contiguous", workers=2, max_tokens=30, step_tokens=8)
    assert hw.result.commits == 0 and hw.cache.lengths()[0] == hw.result.prompt_tokens


def test_paragraph_rule_with_a_real_tokenizer(tmp_path):
    from sw_stack.hogwild.checkpoint import load
    from sw_stack.hogwild.generate import HFTokenizer

    shape, weights, tok = load(make_checkpoint(tmp_path / "ck", TINY_SHAPE))
    hw = Hogwild(Decoder(shape, weights), SharedCache(shape, 2, "combined"), HFTokenizer(tok), layout="combined")
    w = hw.workers[0]
    w.block = hw.tok.encode("It works.\n\n")
    assert hw._step_ended(w)
    w.block = hw.tok.encode("It works\n\n")
    assert not hw._step_ended(w)
    w.block = hw.tok.encode("It works. And")
    assert not hw._step_ended(w)


def test_generate_command_on_a_test_checkpoint(tmp_path, capsys):
    ck = make_checkpoint(tmp_path / "ck", TINY_SHAPE, arch="qwen2" if TINY_SHAPE.qkv_bias else "llama")
    assert main(["hogwild", "generate", "--workers", "3", "--prompt", "Sum the odd numbers.", "--model", str(ck),
                 "--max-tokens", "6", "--stream-gbps", "10", "--trace", str(tmp_path / "t.npz")]) == 0
    out = capsys.readouterr().out
    assert "Alice:" in out and "Carol:" in out and "=== committed history ===" in out
    assert "tokens/s over 3 workers" in out and "memory-bandwidth limit" in out
    from sim.core import trace
    from sw_stack.hogwild.traffic import Rec

    rows = trace.read(tmp_path / "t.npz")["traffic"]
    steps = int(out.split(" steps,")[0].rsplit("(", 1)[1])
    writes = rows[rows["kind"] == Rec.KV_WRITE]
    assert len(writes) == steps * 3 * TINY_SHAPE.layers  # every step, worker and layer wrote its token
    assert sorted(set(writes["step"].tolist())) == list(range(1, steps + 1))  # step 0 is the prefill


def test_generate_command_with_a_broken_checkpoint(tmp_path, capsys):
    ck = make_checkpoint(tmp_path / "ck", TINY_SHAPE)
    (ck / "config.json").write_text('{"architectures": ["GPT2LMHeadModel"]}')
    assert main(["hogwild", "generate", "--prompt", "x", "--model", str(ck)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "config.json" in err and "GPT2LMHeadModel" in err
