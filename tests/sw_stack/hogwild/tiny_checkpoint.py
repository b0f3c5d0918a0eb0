"""Tiny Hugging Face-layout checkpoints for tests: config.json, safetensors weights and a trained tokenizer.json.

``make_checkpoint(path, shape, arch=..., seed=...)`` writes the weights of
``sw_stack.hogwild.decoder.random_weights(shape, seed, dtype)`` under Hugging Face's names in ``[out, in]`` layout,
so a test can compare what `sw_stack.hogwild.checkpoint.load` returns against the `Weights` it came from. The
tokenizer is a byte-level BPE trained in-process (no download) on `CORPUS` or the given text: any text round-trips.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from sim.core.config import DecoderShape
from sw_stack.hogwild.decoder import Weights, random_weights

ARCHS = {"llama": ("LlamaForCausalLM", "llama"), "qwen2": ("Qwen2ForCausalLM", "qwen2")}

# A small English corpus, paragraphs separated by blank lines (Hogwild! steps end at paragraphs).
CORPUS = """\
Two workers share one notebook. Each writes a line, reads what the other wrote, and decides what to do next.

The task is to find the sum of the first hundred odd numbers. Alice notices that the sums are perfect squares.

Bob checks the pattern on small cases: one, four, nine, sixteen. The pattern holds, so the answer is ten thousand.

Quick check: am I doing redundant work? No. Alice is proving the pattern while Bob is checking the examples.

A proof by induction starts from the base case and then shows that each step keeps the property true.

If the square of n is the sum of the first n odd numbers, adding the next odd number gives the next square.

The workers agree on the result. They write it down, explain the reasoning, and stop when nothing is left to do.

Caches store the keys and values of every token, so that a new token attends to the past without recomputing it.

When a step is finished, the text moves into the shared history, where every worker can read it again later.

Numbers such as 3.14, 42 and 1,000 appear in the notes, together with symbols like +, -, = and parentheses (x).
"""

TINY_SHAPE = DecoderShape("tiny", layers=2, hidden=48, heads=4, kv_heads=2, head_dim=16, intermediate=96, vocab=320)


def train_tokenizer(vocab: int, corpus: str | None = None) -> Tokenizer:
    """A byte-level BPE of at most ``vocab`` tokens (>= 257: the 256 bytes and ``<|endoftext|>``), trained on the
    paragraphs of ``corpus`` (default `CORPUS`)."""
    if vocab < 257:
        raise ValueError(f"a byte-level tokenizer needs a vocabulary of at least 257, got {vocab}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = CORPUS if corpus is None else corpus
    tok.train_from_iterator([p + "\n\n" for p in text.split("\n\n") if p.strip()], trainer)
    return tok


def hf_tensors(shape: DecoderShape, weights: Weights) -> dict[str, np.ndarray]:
    """`Weights` under Hugging Face's names (the same ``[out, in]`` layout, q/k/v and gate/up split apart)."""
    q, kv, inter = shape.q_dim, shape.kv_dim, shape.intermediate
    out = {"model.embed_tokens.weight": weights.embed}
    for i, layer in enumerate(weights.layers):
        p, a, m = f"model.layers.{i}.", f"model.layers.{i}.self_attn.", f"model.layers.{i}.mlp."
        wq, wk, wv = layer.wqkv[:q], layer.wqkv[q:q + kv], layer.wqkv[q + kv:]
        out |= {p + "input_layernorm.weight": layer.attn_norm, a + "q_proj.weight": wq,
                a + "k_proj.weight": wk, a + "v_proj.weight": wv, a + "o_proj.weight": layer.wo}
        if layer.bqkv is not None:
            b = layer.bqkv
            out |= {a + "q_proj.bias": b[:q], a + "k_proj.bias": b[q:q + kv], a + "v_proj.bias": b[q + kv:]}
        gate, up = layer.w_gate_up[:inter], layer.w_gate_up[inter:]
        out |= {p + "post_attention_layernorm.weight": layer.mlp_norm, m + "gate_proj.weight": gate,
                m + "up_proj.weight": up, m + "down_proj.weight": layer.w_down}
    out["model.norm.weight"] = weights.norm
    if weights.head is not None:
        out["lm_head.weight"] = weights.head
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def config_json(shape: DecoderShape, arch: str) -> dict:
    """A Hugging Face config.json for ``shape`` (head_dim only when it differs from hidden / heads, as HF writes)."""
    name, model_type = ARCHS[arch]
    cfg = {"architectures": [name], "model_type": model_type, "hidden_act": "silu",
           "hidden_size": shape.hidden, "intermediate_size": shape.intermediate,
           "num_attention_heads": shape.heads, "num_hidden_layers": shape.layers,
           "num_key_value_heads": shape.kv_heads, "vocab_size": shape.vocab, "rope_theta": shape.rope_base,
           "rms_norm_eps": shape.norm_eps, "tie_word_embeddings": shape.tie_embeddings, "rope_scaling": None,
           "max_position_embeddings": 4096, "torch_dtype": "float32"}
    if shape.head_dim * shape.heads != shape.hidden:
        cfg["head_dim"] = shape.head_dim
    if arch == "qwen2":
        cfg |= {"use_sliding_window": False, "sliding_window": 4096}
    return cfg


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str = "fp32") -> None:
    """``tensors`` (float32) to one file as F32, F16 or BF16 (bf16: the top half of each float32, written by hand
    because numpy has no bfloat16 for ``safetensors.numpy``; values should already be bf16-representable)."""
    if dtype == "fp32":
        save_file(tensors, str(path))
    elif dtype == "fp16":
        save_file({k: v.astype(np.float16) for k, v in tensors.items()}, str(path))
    elif dtype == "bf16":
        header, blobs, offset = {}, [], 0
        for name, a in tensors.items():
            raw = (np.ascontiguousarray(a, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
            header[name] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
            blobs.append(raw)
            offset += len(raw)
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        Path(path).write_bytes(len(text).to_bytes(8, "little") + text + b"".join(blobs))
    else:
        raise ValueError(f"dtype: expected fp32, fp16 or bf16, got {dtype!r}")


def make_checkpoint(path: str | Path, shape: DecoderShape, *, arch: str = "llama", seed: int = 0,
                    corpus: str | None = None, dtype: str = "fp32", shards: int = 1, index: bool = True) -> Path:
    """Write a checkpoint of ``shape`` into directory ``path`` (created) and return it.

    Weights: ``random_weights(shape, seed, dtype)``, stored as ``dtype`` (fp32, fp16, bf16) so loading gives them back
    exactly. ``shards`` > 1 splits the tensors over ``model-0000i-of-0000n.safetensors`` files, listed by
    ``model.safetensors.index.json`` unless ``index`` is false. ``arch`` "qwen2" needs ``shape.qkv_bias`` and
    "llama" needs it false (the architecture decides the biases when loading). The tokenizer is trained on
    ``corpus`` (default `CORPUS`) with at most ``shape.vocab`` tokens.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch: expected one of {', '.join(ARCHS)}, got {arch!r}")
    if shape.qkv_bias != (arch == "qwen2"):
        raise ValueError(f"arch {arch!r} {'has no' if arch == 'llama' else 'has'} q/k/v biases but shape "
                         f"{shape.name!r} has qkv_bias={shape.qkv_bias}")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config_json(shape, arch), indent=2) + "\n")
    train_tokenizer(shape.vocab, corpus).save(str(out / "tokenizer.json"))
    tensors = hf_tensors(shape, random_weights(shape, seed, dtype))
    if shards <= 1:
        write_safetensors(out / "model.safetensors", tensors, dtype)
        return out
    names = list(tensors)
    wmap = {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        write_safetensors(out / fname, part, dtype)
        wmap |= {n: fname for n in part}
    if index:
        (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wmap}, indent=2))
    return out
