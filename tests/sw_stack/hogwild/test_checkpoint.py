from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from tiny_checkpoint import CORPUS, TINY_SHAPE, make_checkpoint

from sw_stack.hogwild import checkpoint
from sw_stack.hogwild.checkpoint import CheckpointError
from sw_stack.hogwild.decoder import Decoder, random_weights

LLAMA = TINY_SHAPE  # head_dim * heads != hidden: config.json carries head_dim
QWEN2 = dataclasses.replace(TINY_SHAPE, hidden=64, qkv_bias=True, tie_embeddings=True, rope_base=1e6, norm_eps=1e-5)
UP = "model.layers.1.mlp.up_proj.weight"


def _same_weights(a, b) -> None:
    for (name, x), (other, y) in zip(a.arrays(), b.arrays(), strict=True):
        assert name == other
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("arch,shape", [("llama", LLAMA), ("qwen2", QWEN2)], ids=["llama", "qwen2"])
def test_checkpoint_loads_the_weights_it_was_written_from(tmp_path: Path, arch: str, shape, dtype: str) -> None:
    path = make_checkpoint(tmp_path / "ckpt", shape, arch=arch, seed=3, dtype=dtype)
    got_shape, weights, tok = checkpoint.load(path)
    assert got_shape == dataclasses.replace(shape, name="ckpt")
    written = random_weights(shape, 3, dtype)
    _same_weights(weights, written)
    tokens = np.array(tok.encode(CORPUS[:200]).ids)
    np.testing.assert_array_equal(Decoder(got_shape, weights).forward_sequence(tokens),
                                  Decoder(shape, written).forward_sequence(tokens))


def _hf_reference(t: dict[str, np.ndarray], cfg: dict, tokens: np.ndarray) -> np.ndarray:
    """Logits from Hugging Face tensors, written from the HF Llama/Qwen2 definitions one token and one head at a
    time (``y = x @ W.T + b``; RoPE with rotate_half; query head h reads KV head h // (heads / kv_heads))."""
    heads, kv_heads, eps = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["rms_norm_eps"]
    d = cfg.get("head_dim") or cfg["hidden_size"] // heads

    def norm(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return w * (x / np.sqrt((x * x).mean() + eps))

    def lin(name: str, x: np.ndarray) -> np.ndarray:
        bias = t.get(name + ".bias")
        return x @ t[name + ".weight"].T + (0 if bias is None else bias)

    def rope(x: np.ndarray, pos: int) -> np.ndarray:
        ang = pos * cfg["rope_theta"] ** (-np.arange(0, d, 2) / d)
        cos, sin = np.cos(np.r_[ang, ang]), np.sin(np.r_[ang, ang])
        return x * cos + np.r_[-x[d // 2:], x[:d // 2]] * sin

    xs = [t["model.embed_tokens.weight"][tok].astype(np.float64) for tok in tokens]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        qs, ks, vs = [], [], []
        for pos, x in enumerate(xs):
            h = norm(x, t[p + "input_layernorm.weight"])
            q, k, v = (lin(p + f"self_attn.{n}_proj", h) for n in "qkv")
            qs.append([rope(q[j * d:(j + 1) * d], pos) for j in range(heads)])
            ks.append([rope(k[j * d:(j + 1) * d], pos) for j in range(kv_heads)])
            vs.append([v[j * d:(j + 1) * d] for j in range(kv_heads)])
        for pos in range(len(xs)):
            out = []
            for j in range(heads):
                kv = j // (heads // kv_heads)
                s = np.array([qs[pos][j] @ ks[u][kv] for u in range(pos + 1)]) / np.sqrt(d)
                a = np.exp(s - s.max())
                out.append(sum(a[u] * vs[u][kv] for u in range(pos + 1)) / a.sum())
            xs[pos] = xs[pos] + lin(p + "self_attn.o_proj", np.concatenate(out))
            h = norm(xs[pos], t[p + "post_attention_layernorm.weight"])
            gate, up = lin(p + "mlp.gate_proj", h), lin(p + "mlp.up_proj", h)
            xs[pos] = xs[pos] + lin(p + "mlp.down_proj", gate / (1 + np.exp(-gate)) * up)
    head = t["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else t["lm_head.weight"]
    return np.array([norm(x, t["model.norm.weight"]) @ head.T for x in xs])


@pytest.mark.parametrize("arch,shape", [("llama", LLAMA), ("qwen2", QWEN2)], ids=["llama", "qwen2"])
def test_loaded_decoder_matches_hugging_face_definition(tmp_path: Path, arch: str, shape) -> None:
    """Catches what a round trip through our own writer cannot: a swapped gate/up, a dropped bias, a head order."""
    path = make_checkpoint(tmp_path / "ckpt", shape, arch=arch, seed=6)
    got_shape, weights, _ = checkpoint.load(path)
    tokens = np.array([3, 141, 59, 26, 5, 35, 89, 79, 3, 238])
    ref = _hf_reference(load_file(path / "model.safetensors"), json.loads((path / "config.json").read_text()), tokens)
    got = Decoder(got_shape, weights).forward_sequence(tokens)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("index", [True, False], ids=["index", "no-index"])
def test_sharded_checkpoint_loads(tmp_path: Path, index: bool) -> None:
    path = make_checkpoint(tmp_path / "ckpt", QWEN2, arch="qwen2", seed=4, shards=3, index=index)
    assert len(list(path.glob("*.safetensors"))) == 3 and (path / checkpoint.INDEX).exists() == index
    _same_weights(checkpoint.load(path)[1], random_weights(QWEN2, 4))


def test_storage_rounds_on_load_and_ignorable_tensors_are_ignored(tmp_path: Path) -> None:
    """A tied checkpoint that also saved lm_head, and an old rotary inv_freq buffer, still load."""
    path = make_checkpoint(tmp_path / "ckpt", QWEN2, arch="qwen2", seed=5)
    tensors = load_file(path / "model.safetensors")
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"]
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.ones(8, np.float32)
    save_file(tensors, path / "model.safetensors")
    _same_weights(checkpoint.load(path, storage="bf16")[1], random_weights(QWEN2, 5, "bf16"))


def test_tokenizer_round_trips_any_text(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path / "a", LLAMA)
    tok = checkpoint.load_tokenizer(path)
    text = "Alice: the sum is 10,000.\n\nBob: naïve café — 数字 ✓\n\n"
    assert tok.decode(tok.encode(text).ids) == text
    assert max(tok.get_vocab().values()) < LLAMA.vocab
    assert (make_checkpoint(tmp_path / "b", LLAMA) / "tokenizer.json").read_bytes() == \
        (path / "tokenizer.json").read_bytes()


def _config(**changes) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        cfg = json.loads((path / "config.json").read_text())
        for key, value in changes.items():
            if value is KeyError:
                del cfg[key]
            else:
                cfg[key] = value
        (path / "config.json").write_text(json.dumps(cfg))
    return edit


def _tensors(edit: Callable[[dict[str, np.ndarray]], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        tensors = load_file(path / "model.safetensors")
        edit(tensors)
        save_file(tensors, path / "model.safetensors")
    return apply


def _nan(t: dict[str, np.ndarray]) -> None:
    t[UP][3, 4] = np.nan


BAD = {
    "no-config": (lambda p: (p / "config.json").unlink(), ["config.json", "no such file"]),
    "bad-json": (lambda p: (p / "config.json").write_text('{"hidden_size": 4,'), ["config.json", "invalid JSON"]),
    "no-tokenizer": (lambda p: (p / "tokenizer.json").unlink(), ["tokenizer.json", "no such file"]),
    "bad-tokenizer": (lambda p: (p / "tokenizer.json").write_text("{}"), ["tokenizer.json", "not a valid tokenizer"]),
    "no-safetensors": (lambda p: (p / "model.safetensors").unlink(), ["ckpt: ", "no *.safetensors file"]),
    "architecture": (_config(architectures=["GPT2LMHeadModel"]), [
        "config.json: architectures: unsupported architecture GPT2LMHeadModel; supported: LlamaForCausalLM, "
        "Qwen2ForCausalLM"]),
    "missing-key": (_config(hidden_size=KeyError), ["config.json: hidden_size: missing key"]),
    "wrong-type": (_config(num_hidden_layers="2"), ["config.json: num_hidden_layers: expected an integer > 0, "
                                                    "got '2'"]),
    "bool-type": (_config(tie_word_embeddings="yes"), ["tie_word_embeddings: expected true or false"]),
    "kv-heads": (_config(num_key_value_heads=3), ["config.json: num_key_value_heads: expected a divisor of heads"]),
    "rope-scaling": (_config(rope_scaling={"rope_type": "llama3", "factor": 8.0}), ["rope_scaling", "'llama3'"]),
    "missing-tensor": (_tensors(lambda t: t.pop(UP)), [f"{UP}: missing tensor", "searched model.safetensors"]),
    "wrong-shape": (_tensors(lambda t: t.update({UP: t[UP][:, :32].copy()})),
                    [f"model.safetensors: {UP}: expected shape (96, 48), got (96, 32)"]),
    "int-dtype": (_tensors(lambda t: t.update({UP: t[UP].astype(np.int32)})),
                  [f"model.safetensors: {UP}: expected dtype F32, F16 or BF16, got I32"]),
    "extra-tensor": (_tensors(lambda t: t.update({"model.layers.2.mlp.up_proj.weight": t[UP]})),
                     ["model.safetensors: model.layers.2.mlp.up_proj.weight: unexpected tensor"]),
    "nan": (_tensors(_nan), [f"model.safetensors: {UP}: expected finite values"]),
    "truncated": (lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:-64]),
                  ["model.safetensors: not a readable safetensors file"]),
    "garbage": (lambda p: (p / "model.safetensors").write_bytes(b"\x00" * 5), ["model.safetensors: not a readable"]),
    "tokenizer-vocab": (_config(vocab_size=300), ["tokenizer.json: vocabulary: expected token ids below "
                                                  "config.json's vocab_size (300), got id 319"]),
    "qwen2-on-llama": (_config(architectures=["Qwen2ForCausalLM"]),
                       ["model.layers.0.self_attn.q_proj.bias: missing tensor"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_checkpoint_is_one_clear_error(tmp_path: Path, case: str) -> None:
    path = make_checkpoint(tmp_path / "ckpt", LLAMA)
    breaker, expected = BAD[case]
    breaker(path)
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    for text in expected:
        assert text in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_shard_index_names_the_index(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path / "ckpt", LLAMA, shards=2)
    (path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors\.index\.json: weight_map\.model\.[a-z0-9_.]+: "
                                              r"names model-00002-of-00002\.safetensors, which does not exist"):
        checkpoint.load(path)
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        checkpoint.load(tmp_path / "nowhere")
