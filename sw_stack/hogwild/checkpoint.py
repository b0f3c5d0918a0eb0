"""Load a Llama or Qwen2 checkpoint in the Hugging Face layout from a local directory (nothing is downloaded).

The directory holds ``config.json``, ``tokenizer.json`` and the tensors in ``*.safetensors`` (one file, or shards
listed by ``model.safetensors.index.json``, or shards without an index). Tensors keep Hugging Face's names and
``[out, in]`` Linear layout; they may be F32, F16 or BF16 and are converted to the decoder's float32
`Weights` (BF16 is read from the file's bytes: numpy has no bfloat16 for ``safetensors.numpy`` to return).

Anything wrong is one `CheckpointError` naming the file, the key or tensor and what was expected, e.g.::

    ckpt/model.safetensors: model.layers.3.mlp.up_proj.weight: expected shape (2048, 768), got (2048, 512)

Features this decoder does not model (RoPE scaling, sliding windows, o/MLP biases, activations other than SiLU) are
refused rather than silently ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
from tokenizers import Tokenizer

from hw.params import ParamError
from sim.core.config import STORAGE_DTYPES, DecoderShape
from sw_stack.hogwild.decoder import LayerWeights, Weights, round_to_storage

ARCHITECTURES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}  # config "architectures" -> family
INDEX = "model.safetensors.index.json"
DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None}  # safetensors dtype -> numpy (BF16: by hand)
IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)  # buffers some older checkpoints saved; recomputed from rope_theta


class CheckpointError(ValueError):
    """A bad or mismatched checkpoint; the message names the file, the key or tensor, and what was expected."""

    def __init__(self, file: str | Path, key: str, message: str) -> None:
        self.file, self.key = str(file), key
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")


# config.json ----------------------------------------------------------------------------------------------------

_REQUIRED = object()


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise CheckpointError(path, "", f"no such file (a checkpoint directory needs {what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(path, "", f"cannot read the file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(path, "", f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from None


def _get(cfg: dict[str, Any], file: Path, key: str, kind: type, default: Any = _REQUIRED) -> Any:
    """``cfg[key]`` as ``kind`` (int and float: > 0); a missing or null key takes ``default`` if one is given."""
    value = cfg.get(key)
    if value is None:
        if default is _REQUIRED:
            expected = {int: "an integer > 0", float: "a number > 0", bool: "true or false"}[kind]
            raise CheckpointError(file, key, f"missing key; expected {expected}")
        return default
    if kind is bool:
        if not isinstance(value, bool):
            raise CheckpointError(file, key, f"expected true or false, got {value!r}")
        return value
    numeric = isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    if not numeric or value <= 0:
        expected = "an integer > 0" if kind is int else "a number > 0"
        raise CheckpointError(file, key, f"expected {expected}, got {value!r}")
    return kind(value)


def _architecture(cfg: dict[str, Any], file: Path) -> str:
    supported = ", ".join(ARCHITECTURES)
    archs = cfg.get("architectures")
    if archs is None:
        raise CheckpointError(file, "architectures", f"missing key; expected a list naming one of {supported}")
    if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
        raise CheckpointError(file, "architectures", f"expected a list naming one of {supported}, got {archs!r}")
    for a in archs:
        if a in ARCHITECTURES:
            return ARCHITECTURES[a]
    raise CheckpointError(file, "architectures", f"unsupported architecture {', '.join(archs)}; supported: "
                                                 f"{supported}")


def _refuse_unmodelled(cfg: dict[str, Any], file: Path) -> None:
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise CheckpointError(file, "hidden_act", f"expected \"silu\" (SwiGLU), got {act!r}")
    scaling = cfg.get("rope_scaling")
    if scaling is not None:
        kind = scaling.get("rope_type", scaling.get("type")) if isinstance(scaling, dict) else scaling
        if kind not in (None, "default"):
            raise CheckpointError(file, "rope_scaling", f"expected null (plain RoPE); {kind!r} scaling is not "
                                                        "supported")
    for key in ("attention_bias", "mlp_bias", "use_sliding_window"):
        if cfg.get(key) not in (None, False):
            raise CheckpointError(file, key, f"expected false or absent; {key}={cfg[key]!r} is not supported")


def read_shape(directory: str | Path) -> DecoderShape:
    """The `DecoderShape` of ``directory/config.json`` (named after the directory).

    Keys Hugging Face defaults are optional here too: num_key_value_heads (the head count), head_dim (hidden /
    heads), rope_theta (10000), rms_norm_eps (1e-6), tie_word_embeddings (false).
    """
    directory = Path(directory)
    file = directory / "config.json"
    cfg = _read_json(file, "config.json, tokenizer.json and *.safetensors")
    if not isinstance(cfg, dict):
        raise CheckpointError(file, "", f"expected a JSON object, got {type(cfg).__name__}")
    arch = _architecture(cfg, file)
    _refuse_unmodelled(cfg, file)
    hidden = _get(cfg, file, "hidden_size", int)
    heads = _get(cfg, file, "num_attention_heads", int)
    head_dim = _get(cfg, file, "head_dim", int, 0)
    if not head_dim:
        if hidden % heads:
            raise CheckpointError(file, "hidden_size", f"expected a multiple of num_attention_heads ({heads}) when "
                                                       f"head_dim is absent, got {hidden}")
        head_dim = hidden // heads
    keys = {"kv_heads": "num_key_value_heads", "head_dim": "head_dim"}
    try:
        return DecoderShape(
            directory.resolve().name or "checkpoint",
            layers=_get(cfg, file, "num_hidden_layers", int),
            hidden=hidden,
            heads=heads,
            kv_heads=_get(cfg, file, "num_key_value_heads", int, heads),
            head_dim=head_dim,
            intermediate=_get(cfg, file, "intermediate_size", int),
            vocab=_get(cfg, file, "vocab_size", int),
            rope_base=_get(cfg, file, "rope_theta", float, 10000.0),
            norm_eps=_get(cfg, file, "rms_norm_eps", float, 1e-6),
            qkv_bias=arch == "qwen2",
            tie_embeddings=_get(cfg, file, "tie_word_embeddings", bool, False),
        )
    except ParamError as exc:
        raise CheckpointError(file, keys.get(exc.field, exc.field), f"expected {exc.expected}, got {exc.value!r}"
                              ) from None


# tokenizer.json -------------------------------------------------------------------------------------------------

def load_tokenizer(directory: str | Path, vocab: int | None = None) -> Tokenizer:
    """``directory/tokenizer.json`` as a ``tokenizers.Tokenizer``; with ``vocab``, every id must be below it."""
    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        raise CheckpointError(path, "", "no such file (a checkpoint directory needs config.json, tokenizer.json "
                                        "and *.safetensors)")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises plain Exception for every parse error
        raise CheckpointError(path, "", f"not a valid tokenizer ({exc})") from None
    if vocab is not None:
        ids = tok.get_vocab(with_added_tokens=True).values()
        top = max(ids, default=-1)
        if top >= vocab:
            raise CheckpointError(path, "vocabulary", f"expected token ids below config.json's vocab_size ({vocab}), "
                                                      f"got id {top}")
    return tok


# *.safetensors --------------------------------------------------------------------------------------------------

def _shard_files(directory: Path) -> tuple[list[Path], dict[str, str]]:
    """The tensor files, and the index's ``weight_map`` (empty without an index)."""
    index = directory / INDEX
    if index.is_file():
        data = _read_json(index, INDEX)
        wmap = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(wmap, dict) or not all(isinstance(v, str) for v in wmap.values()):
            raise CheckpointError(index, "weight_map", "expected an object mapping tensor names to file names")
        files = []
        for name, fname in wmap.items():
            if not (directory / fname).is_file():
                raise CheckpointError(index, f"weight_map.{name}", f"names {fname}, which does not exist")
            if directory / fname not in files:
                files.append(directory / fname)
        return sorted(files), wmap
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise CheckpointError(directory, "", "no *.safetensors file (a checkpoint directory needs config.json, "
                                             "tokenizer.json and *.safetensors)")
    return files, {}


def expected_tensors(shape: DecoderShape) -> dict[str, tuple[int, ...]]:
    """Hugging Face name -> shape (``[out, in]`` for Linear weights) of every tensor ``shape`` needs."""
    h, q, kv, inter = shape.hidden, shape.q_dim, shape.kv_dim, shape.intermediate
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (shape.vocab, h)}
    for i in range(shape.layers):
        p = f"model.layers.{i}."
        out |= {p + "input_layernorm.weight": (h,), p + "self_attn.q_proj.weight": (q, h),
                p + "self_attn.k_proj.weight": (kv, h), p + "self_attn.v_proj.weight": (kv, h)}
        if shape.qkv_bias:
            out |= {p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.bias": (kv,),
                    p + "self_attn.v_proj.bias": (kv,)}
        out |= {p + "self_attn.o_proj.weight": (h, q), p + "post_attention_layernorm.weight": (h,),
                p + "mlp.gate_proj.weight": (inter, h), p + "mlp.up_proj.weight": (inter, h),
                p + "mlp.down_proj.weight": (h, inter)}
    out["model.norm.weight"] = (h,)
    if not shape.tie_embeddings:
        out["lm_head.weight"] = (shape.vocab, h)
    return out


def _open_error(path: Path, exc: Exception) -> CheckpointError:
    return CheckpointError(path, "", f"not a readable safetensors file, corrupt or truncated? ({exc})")


def _read_bf16(path: Path, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A BF16 tensor as float32 (exact: a bf16 value is the top half of a float32's bits). The header was already
    validated by ``safetensors.safe_open``."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
    begin, end = header[name]["data_offsets"]
    raw = np.fromfile(path, dtype="<u2", count=(end - begin) // 2, offset=8 + n + begin)
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)


def load_tensors(directory: str | Path, shape: DecoderShape) -> dict[str, np.ndarray]:
    """Every tensor ``shape`` needs, by Hugging Face name, as float32 in the file's layout; checks names, shapes,
    dtypes and values (finite) and refuses tensors the shape does not use."""
    directory = Path(directory)
    files, wmap = _shard_files(directory)
    want = expected_tensors(shape)
    where: dict[str, Path] = {}
    meta: dict[str, tuple[str, tuple[int, ...]]] = {}
    for path in files:
        try:
            with safetensors.safe_open(str(path), framework="np") as f:
                for name in f.keys():
                    sl = f.get_slice(name)
                    if name in where:
                        raise CheckpointError(path, name, f"also in {where[name].name}; expected in one file")
                    where[name], meta[name] = path, (sl.get_dtype(), tuple(sl.get_shape()))
        except safetensors.SafetensorError as exc:
            raise _open_error(path, exc) from None
        except OSError as exc:
            raise CheckpointError(path, "", f"cannot read the file ({exc})") from None
    searched = ", ".join(p.name for p in files)
    for name, fname in wmap.items():
        if where.get(name) != directory / fname:
            raise CheckpointError(directory / INDEX, f"weight_map.{name}", f"names {fname}, which does not hold it")
    tied = shape.tie_embeddings
    for name, path in where.items():
        if name not in want and not name.endswith(IGNORED_SUFFIXES) and not (tied and name == "lm_head.weight"):
            raise CheckpointError(path, name, f"unexpected tensor for a {shape.layers}-layer "
                                              f"{'Qwen2' if shape.qkv_bias else 'Llama'} model (config.json mismatch?)")
    for name, dims in want.items():
        if name not in where:
            raise CheckpointError(directory, name, f"missing tensor; expected shape {dims}, searched {searched}")
        dtype, got = meta[name]
        if dtype not in DTYPES:
            raise CheckpointError(where[name], name, f"expected dtype F32, F16 or BF16, got {dtype}")
        if got != dims:
            raise CheckpointError(where[name], name, f"expected shape {dims}, got {got}")
    out: dict[str, np.ndarray] = {}
    for path in files:
        names = [n for n in want if where[n] == path]
        try:
            with safetensors.safe_open(str(path), framework="np") as f:
                for name in names:
                    dtype, dims = meta[name]
                    a = _read_bf16(path, name, dims) if dtype == "BF16" else f.get_tensor(name)
                    out[name] = np.asarray(a, dtype=np.float32)
        except safetensors.SafetensorError as exc:
            raise _open_error(path, exc) from None
        except (OSError, ValueError) as exc:
            raise CheckpointError(path, "", f"cannot read the tensors, truncated? ({exc})") from None
        for name in names:
            if not np.isfinite(out[name]).all():
                raise CheckpointError(path, name, "expected finite values, got NaN or infinity")
    return out


def to_weights(tensors: dict[str, np.ndarray], shape: DecoderShape) -> Weights:
    """Hugging Face tensors -> the decoder's `Weights` (same ``[out, in]`` layout, q/k/v and gate/up stacked)."""

    def t(name: str) -> np.ndarray:
        return np.ascontiguousarray(tensors[name])

    layers = []
    for i in range(shape.layers):
        p = f"model.layers.{i}."
        a, m = p + "self_attn.", p + "mlp."
        bias = None
        if shape.qkv_bias:
            bias = np.concatenate([tensors[a + f"{x}_proj.bias"] for x in "qkv"])
        layers.append(LayerWeights(
            attn_norm=t(p + "input_layernorm.weight"),
            wqkv=np.concatenate([tensors[a + f"{x}_proj.weight"] for x in "qkv"]),
            bqkv=bias,
            wo=t(a + "o_proj.weight"),
            mlp_norm=t(p + "post_attention_layernorm.weight"),
            w_gate_up=np.concatenate([tensors[m + "gate_proj.weight"], tensors[m + "up_proj.weight"]]),
            w_down=t(m + "down_proj.weight"),
        ))
    head = None if shape.tie_embeddings else t("lm_head.weight")
    return Weights(t("model.embed_tokens.weight"), layers, t("model.norm.weight"), head)


def load(directory: str | Path, storage: str | None = None) -> tuple[DecoderShape, Weights, Tokenizer]:
    """(shape, weights, tokenizer) of the checkpoint in ``directory``; ``storage`` (fp32, fp16, bf16) rounds every
    weight to that type (None: the values as stored)."""
    if storage is not None and storage not in STORAGE_DTYPES:
        raise ValueError(f"unknown storage {storage!r}; expected one of {', '.join(STORAGE_DTYPES)}")
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(directory, "", "no such checkpoint directory")
    shape = read_shape(directory)
    tokenizer = load_tokenizer(directory, shape.vocab)
    tensors = load_tensors(directory, shape)
    if storage is not None:
        tensors = {name: round_to_storage(a, storage) for name, a in tensors.items()}
    return shape, to_weights(tensors, shape), tokenizer
