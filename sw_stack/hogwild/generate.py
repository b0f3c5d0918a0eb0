"""The Hogwild! driver: W workers of one decoder generating together over one shared cache.

The prompt (a system text telling the workers they collaborate, the task, and the "### Past steps" section)
is prefilled once into the common block. Every step each worker emits one token: a forced one while it has
some queued (its step header ``**Alice [2]:** ``, the periodic "redundant work?" check) and otherwise one
sampled from its logits (greedy, or at a temperature with a seeded generator). All workers' new tokens enter
the cache before anyone attends (token-wise synchrony).

A worker's step ends at a paragraph boundary: with a real tokenizer when its text ends in a blank line after
the end of a sentence (``.``, ``!``, ``?``, ``:`` then ``\\n\\n``); with random weights (`ByteTokenizer`) after
``step_tokens`` generated tokens. In the ``interleaved`` and ``combined`` layouts the step is then committed:
the worker's block joins the common history (its keys re-rotated once) and the next header is queued; in
``contiguous`` nothing is committed and each worker's block holds all its work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

NAMES = ("Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi")
SENTENCE_END = (".", "!", "?", ":")


@dataclass(frozen=True)
class PromptTemplate:
    """The prompt's texts, as in the paper's prompts (configurable)."""

    system: str = ("You are one of {workers} workers solving the task below together. You see the other workers' "
                   "work as they write it. Split the work, do not repeat what another worker is doing, and say so "
                   "when you change course.\n\n")
    task: str = "### Task\n{prompt}\n\n"
    past: str = "### Past steps\n"
    header: str = "**{worker} [{step}]:** "
    check: str = "\nQuick check: am I doing redundant work? (yes/no): "


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...


class ByteTokenizer:
    """The random-weight models' tokenizer: UTF-8 bytes are ids 0..255; any other id decodes as ``<id>``."""

    paragraphs = False  # steps end after a fixed number of tokens, not at paragraphs

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        out, raw = [], bytearray()
        for i in ids:
            if i < 256:
                raw.append(i)
                continue
            out.append(raw.decode("utf-8", "replace"))
            raw.clear()
            out.append(f"<{i}>")
        out.append(raw.decode("utf-8", "replace"))
        return "".join(out)


class HFTokenizer:
    """A Hugging Face ``tokenizers.Tokenizer``: steps end at paragraph boundaries."""

    paragraphs = True

    def __init__(self, tok) -> None:
        self.tok = tok

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)


@dataclass
class Worker:
    name: str
    forced: list[int] = field(default_factory=list)  # tokens to emit before sampling again
    tokens: list[int] = field(default_factory=list)  # every token this worker emitted
    block: list[int] = field(default_factory=list)  # the tokens in its cache block (since its last commit)
    steps: int = 1  # the step it is writing
    generated: int = 0  # sampled tokens
    since_check: int = 0
    since_step: int = 0


@dataclass
class HogwildResult:
    workers: list[Worker]
    common: list[int]  # the common block's tokens: prompt, then the committed steps
    prompt_tokens: int
    steps: int  # decode steps (one token per worker each)
    commits: int
    decode_s: float
    prefill_s: float

    @property
    def tokens_per_s(self) -> float:
        """Tokens of every worker per second of decoding."""
        return self.steps * len(self.workers) / self.decode_s if self.decode_s else 0.0


class Hogwild:
    """Runs W workers of ``decoder`` over ``cache`` (a `sw_stack.hogwild.cache.SharedCache` with W workers)."""

    def __init__(self, decoder, cache, tokenizer: Tokenizer, *, layout: str, step_tokens: int = 64,
                 check_every: int = 256, template: PromptTemplate = PromptTemplate(), temperature: float = 0.0,
                 seed: int = 1) -> None:
        self.decoder, self.cache, self.tok = decoder, cache, tokenizer
        self.layout, self.step_tokens, self.check_every = layout, step_tokens, check_every
        self.template, self.temperature = template, temperature
        self.rng = np.random.default_rng(seed)
        self.workers = [Worker(NAMES[w] if w < len(NAMES) else f"Worker{w + 1}") for w in range(cache.workers)]

    def _header(self, w: Worker) -> list[int]:
        return self.tok.encode(self.template.header.format(worker=w.name, step=w.steps))

    def _sample(self, logits: np.ndarray) -> np.ndarray:
        if self.temperature <= 0:
            return np.argmax(logits, axis=-1)
        z = logits / self.temperature
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        p = z / z.sum(axis=-1, keepdims=True)
        u = self.rng.random(len(p))[:, None]
        return np.minimum((np.cumsum(p, axis=-1) < u).sum(axis=-1), p.shape[-1] - 1)

    def _step_ended(self, w: Worker) -> bool:
        if not getattr(self.tok, "paragraphs", False):
            return w.since_step >= self.step_tokens
        text = self.tok.decode(w.block[-8:])
        return text.endswith("\n\n") and text.rstrip("\n").endswith(SENTENCE_END)

    def run(self, prompt: str, max_tokens: int, on_step: Callable[[int, list[tuple[Worker, str]]], None] | None = None
            ) -> HogwildResult:
        """Generate until every worker has sampled ``max_tokens`` tokens; ``on_step(step, [(worker, text)])`` sees
        each step's tokens as they are produced."""
        t = self.template
        text = t.system.format(workers=len(self.workers)) + t.task.format(prompt=prompt) + t.past
        common = self.tok.encode(text)
        t0 = time.perf_counter()
        logits = self.decoder.prefill(np.asarray(common, dtype=np.int64), self.cache)
        prefill_s = time.perf_counter() - t0
        for w in self.workers:
            w.forced = self._header(w)
        last = np.tile(logits, (len(self.workers), 1))
        steps = commits = 0
        t0 = time.perf_counter()
        while any(w.generated < max_tokens for w in self.workers):
            sampled = self._sample(last)
            ids = np.empty(len(self.workers), dtype=np.int64)
            for i, w in enumerate(self.workers):
                if w.forced:
                    ids[i] = w.forced.pop(0)
                else:
                    ids[i] = sampled[i]
                    w.generated += 1
                    w.since_check += 1
                    w.since_step += 1
            if self.cache.traffic is not None:
                self.cache.traffic.next_step()  # step 0 is the prefill's, step k the k-th decode step's
            last = self.decoder.step(ids, self.cache)
            steps += 1
            for i, w in enumerate(self.workers):
                w.tokens.append(int(ids[i]))
                w.block.append(int(ids[i]))
            if on_step is not None:
                on_step(steps, [(w, self.tok.decode([int(ids[i])])) for i, w in enumerate(self.workers)])
            for i, w in enumerate(self.workers):
                if w.forced:
                    continue
                if self.layout != "contiguous" and self._step_ended(w):
                    self.cache.commit(i)
                    common += w.block
                    w.block = []
                    w.steps += 1
                    w.since_step = 0
                    commits += 1
                    w.forced = self._header(w)
                elif self.check_every and w.since_check >= self.check_every:
                    w.since_check = 0
                    w.forced = self.tok.encode(t.check)
        decode_s = time.perf_counter() - t0
        return HogwildResult(self.workers, common, len(self.tok.encode(text)), steps, commits, decode_s, prefill_s)


def weight_limit_tokens_per_s(weight_bytes: int, workers: int, gbps: float) -> float:
    """The memory-bandwidth limit of a decode step: every weight is read once per step for all workers together,
    so at ``gbps`` (1e9 B/s) a step takes at least ``weight_bytes / gbps`` and yields ``workers`` tokens."""
    return workers * gbps * 1e9 / weight_bytes
