#!/usr/bin/env python3
"""GPT-JX reference forward pass, written to be read next to docs/gpt-jx-model.md.

Independent of the C# engine: loads a Hugging Face style checkpoint folder
(config.json + model.safetensors | model.safetensors.index.json + shards |
pytorch_model.bin | pytorch_model.bin.index.json + shards), upcasts every
stored tensor exactly to float64 (or float32 on request), and runs the forward
pass by full recomputation: no KV cache, every position of the sequence in one
pass with a causal mask.

Command line (prints JSON in the format of the engine's `gptjx logits`):

    python3 tools/reference/gptjx_reference.py --model DIR --ids 1,2,3 [--all-positions]

    -> {"ids": [1, 2, 3], "logits": [V floats of the last position]}
       with --all-positions: {"ids": [...], "logits": [[V floats] per position]}

Library use:

    model = load_model(DIR)                  # Model(config, weights, slopes)
    logits = forward(model, [1, 2, 3])       # torch.Tensor [T, V], float64
    new_ids = greedy(model, [1, 2, 3], 12)   # 12 ids, full recompute per step
"""

import argparse
import json
import math
import os
import pickle
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch


# ---------------------------------------------------------------------------
# Config: every key that changes the math is read here, nothing is hard-coded.
# ---------------------------------------------------------------------------

class ConfigError(ValueError):
    pass


class Config:
    """The math keys of config.json.

    Defaults for absent keys are those of the Hugging Face BTLM config class
    (so a checkpoint means the same thing here as there), except for the two
    keys that select the architecture, which must be present and supported.
    """

    def __init__(self, raw):
        self.raw = raw

        def get(key, default=None, required=False):
            if key not in raw or raw[key] is None:
                if required:
                    raise ConfigError(f"config.json: required key '{key}' is missing")
                return default
            return raw[key]

        model_type = get("model_type", required=True)
        if model_type != "btlm":
            raise ConfigError(f"config.json: 'model_type' is '{model_type}', expected 'btlm'")
        act = get("activation_function", required=True)
        if act != "swiglu":
            raise ConfigError(f"config.json: 'activation_function' '{act}' is not supported (only 'swiglu')")
        pe = get("position_embedding_type", required=True)
        if pe != "alibi":
            raise ConfigError(f"config.json: 'position_embedding_type' '{pe}' is not supported (only 'alibi')")

        self.n_layer = int(get("n_layer", required=True))
        self.n_embd = int(get("n_embd", required=True))
        self.n_head = int(get("n_head", required=True))
        # n_inner null or absent means 4 * n_embd (as in GPT-2 / BTLM).
        self.n_inner = int(get("n_inner", 4 * self.n_embd))
        self.n_positions = int(get("n_positions", required=True))
        self.vocab_size = int(get("vocab_size", required=True))
        self.layer_norm_epsilon = float(get("layer_norm_epsilon", 1e-5))
        self.mup_embeddings_scale = float(get("mup_embeddings_scale", 1.0))
        self.mup_output_alpha = float(get("mup_output_alpha", 1.0))
        self.mup_width_scale = float(get("mup_width_scale", 1.0))
        self.mup_scale_qk_dot_by_d = bool(get("mup_scale_qk_dot_by_d", False))
        self.scale_attn_weights = bool(get("scale_attn_weights", True))
        self.scale_attn_by_inverse_layer_idx = bool(get("scale_attn_by_inverse_layer_idx", False))
        self.tie_word_embeddings = bool(get("tie_word_embeddings", True))
        self.alibi_scaling = parse_alibi_scaling(get("alibi_scaling", None))

        if self.n_embd % self.n_head != 0:
            raise ConfigError(f"config.json: 'n_embd' {self.n_embd} is not a multiple of 'n_head' {self.n_head}")
        self.head_dim = self.n_embd // self.n_head


def parse_alibi_scaling(value):
    """None, or {"type": "linear", "factor": f} or {"type": "linear", "train_seq_len": n}.

    As in Hugging Face's BTLM: when both are given, "factor" wins.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"config.json: 'alibi_scaling' must be an object, got {value!r}")
    if value.get("type") != "linear":
        raise ConfigError(f"config.json: 'alibi_scaling.type' {value.get('type')!r} is not supported (only 'linear')")
    factor = value.get("factor")
    train_len = value.get("train_seq_len")
    if factor is None and train_len is None:
        raise ConfigError("config.json: 'alibi_scaling' needs 'factor' or 'train_seq_len'")
    if factor is not None:
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
            raise ConfigError(f"config.json: 'alibi_scaling.factor' must be a positive number, got {factor!r}")
        return {"type": "linear", "factor": float(factor)}
    if isinstance(train_len, bool) or not isinstance(train_len, int) or train_len < 1:
        raise ConfigError(f"config.json: 'alibi_scaling.train_seq_len' must be a positive integer, got {train_len!r}")
    return {"type": "linear", "train_seq_len": train_len}


def alibi_divisor(alibi_scaling, key_length):
    """What the slopes are divided by when `key_length` positions are attended.

    linear/factor f:          f
    linear/train_seq_len n:   key_length / n if key_length > n, else 1
    (key_length counts every key position, cached ones included.)
    """
    if alibi_scaling is None:
        return 1.0
    if "factor" in alibi_scaling:
        return alibi_scaling["factor"]
    n = alibi_scaling["train_seq_len"]
    return key_length / n if key_length > n else 1.0


# ---------------------------------------------------------------------------
# ALiBi slopes (spec: "ALiBi slopes for H heads").
# ---------------------------------------------------------------------------

def alibi_slopes(n_head):
    """slope_h = 2^(-8 (h+1) / H) for a power-of-two H; otherwise the slopes of
    P = 2^floor(log2 H) heads followed by every other slope (indices 0, 2, 4, ...)
    of the 2P-head list, until there are H."""

    def power_of_two(n):
        return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]

    if n_head < 1:
        raise ValueError("n_head must be >= 1")
    p = 1 << (n_head.bit_length() - 1)          # 2^floor(log2 H)
    if p == n_head:
        return power_of_two(n_head)
    return power_of_two(p) + power_of_two(2 * p)[0::2][: n_head - p]


# Relative rounding of each storage dtype (half an ulp at 1.0, i.e. 2^-(mantissa bits+1)).
_DTYPE_REL_ROUNDING = {
    torch.float64: 2.0 ** -53,
    torch.float32: 2.0 ** -24,
    torch.float16: 2.0 ** -11,
    torch.bfloat16: 2.0 ** -8,
}


# ---------------------------------------------------------------------------
# Checkpoint readers: safetensors (single or sharded) and pytorch_model.bin.
# ---------------------------------------------------------------------------

class CheckpointError(ValueError):
    pass


_ST_DTYPES = {
    "F64": (np.dtype("<f8"), None),
    "F32": (np.dtype("<f4"), None),
    "F16": (np.dtype("<f2"), None),
    "BF16": (np.dtype("<i2"), torch.bfloat16),   # raw bits, reinterpreted below
    "I64": (np.dtype("<i8"), None),
    "I32": (np.dtype("<i4"), None),
    "I16": (np.dtype("<i2"), None),
    "I8": (np.dtype("i1"), None),
    "U8": (np.dtype("u1"), None),
    "BOOL": (np.dtype("?"), None),
}


def read_safetensors(path):
    """Return an OrderedDict name -> torch.Tensor (in the stored dtype)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: too short for a safetensors header")
        (header_len,) = struct.unpack("<Q", head)
        if 8 + header_len > size:
            raise CheckpointError(f"{path}: header length {header_len} runs past the end of the file")
        header = json.loads(f.read(header_len).decode("utf-8"))
    # Memory-mapped, so a multi-GB checkpoint is not read into memory twice.
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len) if size > 8 + header_len \
        else np.zeros(0, dtype=np.uint8)
    out = OrderedDict()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        if dtype not in _ST_DTYPES:
            raise CheckpointError(f"{path}: tensor '{name}': unsupported dtype {dtype}")
        np_dtype, reinterpret = _ST_DTYPES[dtype]
        shape = [int(s) for s in info["shape"]]
        begin, end = info["data_offsets"]
        count = math.prod(shape)
        if end - begin != count * np_dtype.itemsize or end > len(data) or begin < 0:
            raise CheckpointError(f"{path}: tensor '{name}': data_offsets {begin}..{end} do not fit "
                                  f"shape {shape} {dtype} in {len(data)} data bytes")
        arr = np.array(data[begin:end]).view(np_dtype).reshape(shape)
        t = torch.from_numpy(arr)
        if reinterpret is not None:
            t = t.view(reinterpret)
        out[name] = t
    return out


def read_pytorch_bin(path):
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused to unpickle: {e}") from e
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(sd).__name__}")
    return OrderedDict(sd)


def read_checkpoint_tensors(model_dir):
    """All tensors of the checkpoint in `model_dir`, in their stored dtypes."""
    single_st = os.path.join(model_dir, "model.safetensors")
    index_st = os.path.join(model_dir, "model.safetensors.index.json")
    single_bin = os.path.join(model_dir, "pytorch_model.bin")
    index_bin = os.path.join(model_dir, "pytorch_model.bin.index.json")
    if os.path.exists(single_st):
        return read_safetensors(single_st)
    for index, reader in ((index_st, read_safetensors), (index_bin, read_pytorch_bin)):
        if os.path.exists(index):
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
            tensors = OrderedDict()
            for shard in sorted(set(weight_map.values())):
                part = reader(os.path.join(model_dir, shard))
                for name, t in part.items():
                    if weight_map.get(name) != shard:
                        raise CheckpointError(f"{shard}: tensor '{name}' is not mapped to this shard in {index}")
                    tensors[name] = t
            missing = [n for n in weight_map if n not in tensors]
            if missing:
                raise CheckpointError(f"{index}: tensor '{missing[0]}' is listed but not found in its shard")
            return tensors
    if os.path.exists(single_bin):
        return read_pytorch_bin(single_bin)
    raise CheckpointError(f"{model_dir}: no model.safetensors, model.safetensors.index.json, "
                          "pytorch_model.bin or pytorch_model.bin.index.json")


# ---------------------------------------------------------------------------
# The model: weights bound by name, shapes checked.
# ---------------------------------------------------------------------------

class Model:
    def __init__(self, config, weights, slopes, slopes_source):
        self.config = config
        self.w = weights             # name -> tensor in compute dtype
        self.slopes = slopes         # [H] tensor in compute dtype
        self.slopes_source = slopes_source  # "stored" or "formula"


def expected_shapes(c):
    D, F, V, H = c.n_embd, c.n_inner, c.vocab_size, c.n_head
    shapes = OrderedDict()
    shapes["transformer.wte.weight"] = (V, D)
    for i in range(c.n_layer):
        p = f"transformer.h.{i}."
        shapes[p + "ln_1.weight"] = (D,)
        shapes[p + "ln_1.bias"] = (D,)
        shapes[p + "attn.c_attn.weight"] = (D, 3 * D)
        shapes[p + "attn.c_attn.bias"] = (3 * D,)
        shapes[p + "attn.c_proj.weight"] = (D, D)
        shapes[p + "attn.c_proj.bias"] = (D,)
        shapes[p + "ln_2.weight"] = (D,)
        shapes[p + "ln_2.bias"] = (D,)
        shapes[p + "mlp.c_fc.weight"] = (D, F)
        shapes[p + "mlp.c_fc.bias"] = (F,)
        shapes[p + "mlp.c_fc2.weight"] = (D, F)
        shapes[p + "mlp.c_fc2.bias"] = (F,)
        shapes[p + "mlp.c_proj.weight"] = (F, D)
        shapes[p + "mlp.c_proj.bias"] = (D,)
    shapes["transformer.ln_f.weight"] = (D,)
    shapes["transformer.ln_f.bias"] = (D,)
    if not c.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, D)
    return shapes


def _is_legacy_buffer(name):
    return name.startswith("transformer.h.") and (name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"))


def load_model(model_dir, dtype=torch.float64, warn=None):
    """Load config.json and the weights of `model_dir`, upcast to `dtype`."""
    if warn is None:
        def warn(msg):
            print(f"warning: {msg}", file=sys.stderr)
    with open(os.path.join(model_dir, "config.json")) as f:
        config = Config(json.load(f))
    stored = read_checkpoint_tensors(model_dir)
    shapes = expected_shapes(config)

    weights = {}
    for name, shape in shapes.items():
        if name not in stored:
            raise CheckpointError(f"{model_dir}: tensor '{name}' is missing")
        t = stored[name]
        if name != "transformer.wte.weight" or not config.tie_word_embeddings:
            stored[name] = None          # release the stored copy as soon as it is upcast
        if tuple(t.shape) != shape:
            raise CheckpointError(f"{model_dir}: tensor '{name}' has shape {list(t.shape)}, expected {list(shape)}")
        if not t.is_floating_point():
            raise CheckpointError(f"{model_dir}: tensor '{name}' has non-float dtype {t.dtype}")
        weights[name] = t.to(dtype)      # exact: every stored float type widens losslessly
    if config.tie_word_embeddings:
        # Tied: the output projection is the embedding matrix; a stored
        # lm_head.weight is not used (as in Hugging Face, which re-ties it).
        if "lm_head.weight" in stored and not torch.equal(stored["lm_head.weight"].to(dtype),
                                                          weights["transformer.wte.weight"]):
            warn("tensor 'lm_head.weight' differs from 'transformer.wte.weight' but tie_word_embeddings "
                 "is true; 'transformer.wte.weight' is used")
        weights["lm_head.weight"] = weights["transformer.wte.weight"]

    H = config.n_head
    formula = torch.tensor(alibi_slopes(H), dtype=torch.float64)
    if "transformer.relative_pe.slopes" in stored:
        s = stored["transformer.relative_pe.slopes"]
        if tuple(s.shape) != (H, 1):
            raise CheckpointError(f"{model_dir}: tensor 'transformer.relative_pe.slopes' has shape "
                                  f"{list(s.shape)}, expected [{H}, 1]")
        s64 = s.to(torch.float64).reshape(H)
        tol = _DTYPE_REL_ROUNDING.get(s.dtype, 2.0 ** -8) * 1.0001
        rel = ((s64 - formula).abs() / formula).max().item()
        if rel > tol:
            raise CheckpointError(f"{model_dir}: tensor 'transformer.relative_pe.slopes' differs from the ALiBi "
                                  f"formula by {rel:.3g} relative, more than {s.dtype} rounding ({tol:.3g})")
        slopes, source = s64.to(dtype), "stored"
    else:
        slopes, source = formula.to(dtype), "formula"

    known = set(shapes) | {"lm_head.weight", "transformer.relative_pe.slopes"}
    for name in stored:
        if name not in known and not _is_legacy_buffer(name):
            warn(f"tensor '{name}' is not used by the model")
    return Model(config, weights, slopes, source)


# ---------------------------------------------------------------------------
# Forward pass (spec: "Forward pass"), full recompute over the whole sequence.
# ---------------------------------------------------------------------------

def layer_norm(x, gain, bias, eps):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)      # biased variance
    return (x - mean) / torch.sqrt(var + eps) * gain + bias


def silu(x):
    return x * torch.sigmoid(x)


def forward(model, ids):
    """Logits [T, V] for every position of `ids`, in the model's compute dtype.

    All T positions are attended in one pass, so the key length for
    alibi_scaling/train_seq_len is T for every row.
    """
    c, w = model.config, model.w
    ids = [int(i) for i in ids]
    T, D, H, d = len(ids), c.n_embd, c.n_head, c.head_dim
    if T == 0:
        raise ValueError("ids must not be empty")
    if T > c.n_positions:
        raise ValueError(f"{T} ids exceed n_positions {c.n_positions}")
    if min(ids) < 0 or max(ids) >= c.vocab_size:
        raise ValueError(f"ids must be in [0, {c.vocab_size})")
    dtype = model.slopes.dtype

    # h = wte[ids] * mup_embeddings_scale
    h = w["transformer.wte.weight"][torch.tensor(ids)] * c.mup_embeddings_scale      # [T, D]

    # ALiBi: - slope_h * (i - j), slopes divided by alibi_scaling's divisor.
    pos = torch.arange(T, dtype=dtype)
    distance = pos[:, None] - pos[None, :]                                          # [T, T], i - j
    slopes = model.slopes / alibi_divisor(c.alibi_scaling, key_length=T)
    alibi = -slopes[:, None, None] * distance[None, :, :]                           # [H, T, T]
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)                    # j > i

    p = 1.0 if c.mup_scale_qk_dot_by_d else 0.5
    for l in range(c.n_layer):
        pre = f"transformer.h.{l}."
        # a = LayerNorm(h; ln_1); q, k, v = split(a @ c_attn.W + c_attn.b)
        a = layer_norm(h, w[pre + "ln_1.weight"], w[pre + "ln_1.bias"], c.layer_norm_epsilon)
        qkv = a @ w[pre + "attn.c_attn.weight"] + w[pre + "attn.c_attn.bias"]     # [T, 3D]
        q, k, v = qkv[:, :D], qkv[:, D:2 * D], qkv[:, 2 * D:]
        q = q.reshape(T, H, d).transpose(0, 1)                                      # [H, T, d]
        k = k.reshape(T, H, d).transpose(0, 1)
        v = v.reshape(T, H, d).transpose(0, 1)

        s = q @ k.transpose(1, 2)                                                   # [H, T, T]
        if c.scale_attn_weights:
            s = s / (d ** p)
        if c.scale_attn_by_inverse_layer_idx:
            s = s / (l + 1)
        s = s + alibi
        s = s.masked_fill(future, float("-inf"))
        o = torch.softmax(s, dim=-1) @ v                                            # [H, T, d]
        o = o.transpose(0, 1).reshape(T, D)                                         # merge heads
        h = h + (o @ w[pre + "attn.c_proj.weight"] + w[pre + "attn.c_proj.bias"])

        # SwiGLU MLP: the gate is c_fc2.
        m = layer_norm(h, w[pre + "ln_2.weight"], w[pre + "ln_2.bias"], c.layer_norm_epsilon)
        u = m @ w[pre + "mlp.c_fc.weight"] + w[pre + "mlp.c_fc.bias"]
        g = m @ w[pre + "mlp.c_fc2.weight"] + w[pre + "mlp.c_fc2.bias"]
        h = h + ((u * silu(g)) @ w[pre + "mlp.c_proj.weight"] + w[pre + "mlp.c_proj.bias"])

    h = layer_norm(h, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], c.layer_norm_epsilon)
    return (h @ w["lm_head.weight"].T) * (c.mup_output_alpha * c.mup_width_scale)   # [T, V]


def greedy(model, prompt, max_new_tokens, eos_token_id=None):
    """Greedy decoding with full recompute at every step (argmax of the last
    position's logits; ties go to the lowest id). Returns the new ids only."""
    ids = [int(i) for i in prompt]
    new = []
    for _ in range(max_new_tokens):
        nxt = int(torch.argmax(forward(model, ids)[-1]).item())
        ids.append(nxt)
        new.append(nxt)
        if eos_token_id is not None and nxt == eos_token_id:
            break
    return new


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def _round(x, digits):
    return float(f"{x:.{digits}g}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="GPT-JX reference logits (full recompute, float64 by default).")
    ap.add_argument("--model", required=True, help="checkpoint folder (config.json + weights)")
    ap.add_argument("--ids", required=True, help="comma-separated token ids, e.g. 1,2,3")
    ap.add_argument("--all-positions", action="store_true", help="print the logits of every position")
    ap.add_argument("--precision", choices=["float64", "float32"], default="float64")
    ap.add_argument("--digits", type=int, default=9, help="significant digits printed (default 9)")
    ap.add_argument("--greedy", type=int, default=0, metavar="N",
                    help="also add \"greedy\": N greedily generated ids (full recompute per step)")
    args = ap.parse_args(argv)

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    ids = [int(s) for s in args.ids.replace(" ", "").split(",") if s != ""]
    dtype = torch.float64 if args.precision == "float64" else torch.float32
    try:
        model = load_model(args.model, dtype=dtype)
        logits = forward(model, ids)
    except (ConfigError, CheckpointError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rows = [[_round(x, args.digits) for x in row] for row in logits.tolist()]
    out = {"ids": ids, "logits": rows if args.all_positions else rows[-1]}
    if args.greedy > 0:
        out["greedy"] = greedy(model, ids, args.greedy)
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
