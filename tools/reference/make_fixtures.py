#!/usr/bin/env python3
"""Write the golden fixtures under tests/fixtures/golden/<name>/.

Each fixture is a complete GPT-JX (BTLM) checkpoint folder with random but
seeded weights, plus golden.json holding the reference logits (computed by
gptjx_reference.py in float64 from the weights exactly as written to disk).

    python3 tools/reference/make_fixtures.py [--out tests/fixtures/golden] [--only NAME ...]

Re-running produces byte-identical files.
"""

import argparse
import json
import os
import shutil
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gptjx_reference as ref  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_OUT = os.path.join(REPO_ROOT, "tests", "fixtures", "golden")

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
ST_DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                  torch.float64: "F64", torch.bool: "BOOL", torch.int64: "I64"}

# ---------------------------------------------------------------------------
# The fixtures. Shapes: D = n_embd, H = n_head, L = n_layer, F = n_inner, V = vocab.
# ---------------------------------------------------------------------------

FIXTURES = [
    dict(name="tiny-f32", fmt="safetensors", dtype="float32", D=48, H=4, L=2, F=139, V=384, seed=1,
         tie="absent", slopes=True,
         what="the baseline: tied embeddings with 'tie_word_embeddings' absent (so true), no lm_head.weight, "
              "no 'alibi_scaling' key, published muP values"),
    dict(name="tiny-heads6", fmt="safetensors", dtype="float32", D=48, H=6, L=3, F=139, V=384, seed=2,
         tie=True, slopes=True,
         what="6 heads (not a power of two): slopes 2^-2, 2^-4, 2^-6, 2^-8 then 2^-1, 2^-3; 3 layers"),
    dict(name="tiny-untied", fmt="safetensors", dtype="float32", D=48, H=8, L=2, F=139, V=400, seed=3,
         tie=False, slopes=False,
         what="untied: lm_head.weight [V, D] stored, 'tie_word_embeddings' false; NO stored "
              "transformer.relative_pe.slopes, so the ALiBi formula applies"),
    dict(name="tiny-bf16", fmt="safetensors", dtype="bfloat16", D=64, H=16, L=2, F=187, V=448, seed=4,
         tie=True, slopes=True,
         what="all tensors stored as bfloat16 ('torch_dtype' bfloat16); 16 heads so slopes 2^(-(h+1)/2) are "
              "not exact in bf16: the stored slopes are the bf16-rounded formula values and the golden uses "
              "them (upcast exactly), not the formula"),
    dict(name="tiny-f16", fmt="safetensors", dtype="float16", D=48, H=12, L=2, F=139, V=384, seed=5,
         tie=True, slopes=True,
         what="all tensors stored as float16 ('torch_dtype' float16); 12 heads (not a power of two): the last "
              "4 slopes 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5 are stored fp16-rounded"),
    dict(name="tiny-sharded", fmt="sharded", dtype="float32", D=48, H=4, L=3, F=139, V=384, seed=6,
         tie=True, slopes=True,
         what="two safetensors shards model-00001-of-00002.safetensors (embeddings, layer 0) and "
              "model-00002-of-00002.safetensors (the rest) with model.safetensors.index.json"),
    dict(name="tiny-bin", fmt="bin", dtype="float32", D=48, H=4, L=2, F=139, V=384, seed=7,
         tie=True, slopes=True, legacy_buffers=True,
         what="pytorch_model.bin (torch.save zip of an OrderedDict state dict); carries the legacy buffers "
              "transformer.h.{i}.attn.bias (bool [1, 1, 128, 128] causal mask) and .attn.masked_bias "
              "(float32 scalar -1e4) in every layer, which must be ignored"),
    dict(name="tiny-scaled", fmt="safetensors", dtype="float32", D=48, H=4, L=3, F=139, V=384, seed=8,
         tie=True, slopes=True,
         overrides={"scale_attn_by_inverse_layer_idx": True, "mup_scale_qk_dot_by_d": False,
                    "alibi_scaling": {"type": "linear", "factor": 2.0},
                    "mup_embeddings_scale": 10.0, "mup_output_alpha": 1.5, "mup_width_scale": 0.25,
                    "layer_norm_epsilon": 1e-3},
         what="scale_attn_by_inverse_layer_idx true (scores of layer l divided by l+1, 3 layers), "
              "mup_scale_qk_dot_by_d false (scores divided by sqrt(d)), alibi_scaling linear factor 2.0 "
              "(slopes halved), and non-published values mup_embeddings_scale 10, mup_output_alpha 1.5, "
              "mup_width_scale 0.25, layer_norm_epsilon 1e-3, so none of them can be hard-coded"),
    dict(name="tiny-alibi-train-len", fmt="safetensors", dtype="float32", D=48, H=4, L=2, F=139, V=384, seed=9,
         tie=True, slopes=True, n_ids=20, greedy=False, short_ids=6,
         overrides={"alibi_scaling": {"type": "linear", "train_seq_len": 8}},
         what="alibi_scaling linear train_seq_len 8 with 20 input ids: the whole sequence in one pass attends "
              "20 key positions, so every row's slopes are divided by 20/8 = 2.5. 'short_input_ids' (6 ids, "
              "<= 8) have undivided slopes. No greedy golden: with a KV cache the divisor depends on the key "
              "length of each step (as in Hugging Face), so cached decoding is not a full recompute"),
    dict(name="tiny-hd80", fmt="safetensors", dtype="bfloat16", D=160, H=2, L=2, F=427, V=384, seed=10,
         tie=True, slopes=True,
         what="head width 80, the published model's (n_embd 160, 2 heads), and its n_inner / n_embd ratio "
              "(6826 / 2560, so n_inner 427); all tensors bfloat16"),
]

# Weight scales: std of linear weights, biases, embeddings; LayerNorm gains 1 + noise.
SCALES = dict(linear=0.3, bias=0.05, wte=0.2, lm_head=0.3, ln_gain_noise=0.1, ln_bias=0.05)


def fixture_config(fx):
    D, H, L, F, V = fx["D"], fx["H"], fx["L"], fx["F"], fx["V"]
    cfg = OrderedDict()
    cfg["_name_or_path"] = "gpt-jx-" + fx["name"]
    cfg["activation_function"] = "swiglu"
    cfg["alibi_scaling"] = None
    cfg["architectures"] = ["BTLMLMHeadModel"]
    cfg["attn_pdrop"] = 0.0
    cfg["auto_map"] = {
        "AutoConfig": "configuration_btlm.BTLMConfig",
        "AutoModel": "modeling_btlm.BTLMModel",
        "AutoModelForCausalLM": "modeling_btlm.BTLMLMHeadModel",
        "AutoModelForQuestionAnswering": "modeling_btlm.BTLMForQuestionAnswering",
        "AutoModelForSequenceClassification": "modeling_btlm.BTLMForSequenceClassification",
        "AutoModelForTokenClassification": "modeling_btlm.BTLMForTokenClassification",
    }
    cfg["bos_token_id"] = V - 1
    cfg["embd_pdrop"] = 0.0
    cfg["eos_token_id"] = V - 1
    cfg["initializer_range"] = 0.073
    cfg["layer_norm_epsilon"] = 1e-05
    cfg["model_type"] = "btlm"
    cfg["mup_embeddings_scale"] = 14.6
    cfg["mup_output_alpha"] = 2.22
    cfg["mup_scale_qk_dot_by_d"] = True
    cfg["mup_width_scale"] = 0.1
    cfg["n_embd"] = D
    cfg["n_head"] = H
    cfg["n_inner"] = F
    cfg["n_layer"] = L
    cfg["n_positions"] = 128
    cfg["position_embedding_type"] = "alibi"
    cfg["reorder_and_upcast_attn"] = False
    cfg["resid_pdrop"] = 0.0
    cfg["scale_attn_by_inverse_layer_idx"] = False
    cfg["scale_attn_weights"] = True
    cfg["tie_word_embeddings"] = fx["tie"]
    cfg["torch_dtype"] = fx["dtype"]
    cfg["transformers_version"] = "4.30.0"
    cfg["use_cache"] = True
    cfg["vocab_size"] = V
    for k, v in fx.get("overrides", {}).items():
        cfg[k] = v
    if fx["tie"] == "absent":
        del cfg["tie_word_embeddings"]
    if fx["name"] == "tiny-f32":
        del cfg["alibi_scaling"]
    return OrderedDict(sorted(cfg.items()))


def random_weights(fx, seed):
    """float64 master weights, in the order a BTLM state dict lists them."""
    rng = np.random.RandomState(seed)
    D, H, L, F, V = fx["D"], fx["H"], fx["L"], fx["F"], fx["V"]
    s = SCALES

    def normal(shape, std):
        return rng.standard_normal(shape) * std

    def gain(n):
        return 1.0 + normal((n,), s["ln_gain_noise"])

    w = OrderedDict()
    w["transformer.wte.weight"] = normal((V, D), s["wte"])
    for i in range(L):
        p = f"transformer.h.{i}."
        w[p + "ln_1.weight"] = gain(D)
        w[p + "ln_1.bias"] = normal((D,), s["ln_bias"])
        w[p + "attn.c_attn.weight"] = normal((D, 3 * D), s["linear"])
        w[p + "attn.c_attn.bias"] = normal((3 * D,), s["bias"])
        w[p + "attn.c_proj.weight"] = normal((D, D), s["linear"])
        w[p + "attn.c_proj.bias"] = normal((D,), s["bias"])
        w[p + "ln_2.weight"] = gain(D)
        w[p + "ln_2.bias"] = normal((D,), s["ln_bias"])
        w[p + "mlp.c_fc.weight"] = normal((D, F), s["linear"])
        w[p + "mlp.c_fc.bias"] = normal((F,), s["bias"])
        w[p + "mlp.c_fc2.weight"] = normal((D, F), s["linear"])
        w[p + "mlp.c_fc2.bias"] = normal((F,), s["bias"])
        w[p + "mlp.c_proj.weight"] = normal((F, D), s["linear"])
        w[p + "mlp.c_proj.bias"] = normal((D,), s["bias"])
    w["transformer.ln_f.weight"] = gain(D)
    w["transformer.ln_f.bias"] = normal((D,), s["ln_bias"])
    if fx["tie"] is False:
        w["lm_head.weight"] = normal((V, D), s["lm_head"])
    if fx["slopes"]:
        w["transformer.relative_pe.slopes"] = np.array(ref.alibi_slopes(H), dtype=np.float64).reshape(H, 1)
    return w


def stored_tensors(fx, master):
    """Cast the master weights to the checkpoint dtype (round to nearest even)."""
    dt = TORCH_DTYPES[fx["dtype"]]
    out = OrderedDict()
    for name, arr in master.items():
        out[name] = torch.from_numpy(arr).to(dt).contiguous()
    if fx.get("legacy_buffers"):
        P = 128
        for i in range(fx["L"]):
            out[f"transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(P, P, dtype=torch.bool)).view(1, 1, P, P)
            out[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4, dtype=torch.float32)
    return out


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------

def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def write_safetensors(path, tensors):
    """8-byte LE header length, JSON header (dtype, shape, data_offsets) padded
    with spaces to a multiple of 8, then the raw little-endian bytes."""
    header = OrderedDict()
    header["__metadata__"] = {"format": "pt"}
    chunks, offset = [], 0
    for name in sorted(tensors):
        b = tensor_bytes(tensors[name])
        header[name] = {"dtype": ST_DTYPE_NAMES[tensors[name].dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in chunks:
            f.write(b)
    return offset


def write_sharded(folder, tensors, fx):
    first = [n for n in tensors if n.startswith("transformer.wte.") or n.startswith("transformer.h.0.")]
    shards = [OrderedDict((n, tensors[n]) for n in tensors if n in first),
              OrderedDict((n, tensors[n]) for n in tensors if n not in first)]
    weight_map, total = OrderedDict(), 0
    for k, part in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        total += write_safetensors(os.path.join(folder, fname), part)
        for n in part:
            weight_map[n] = fname
    index = OrderedDict([("metadata", {"total_size": total}),
                         ("weight_map", OrderedDict(sorted(weight_map.items())))])
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2) + "\n")


def write_bin(path, tensors):
    # Saved to the path (not a buffer) so the zip records are named
    # "pytorch_model/..." as in published checkpoints.
    torch.save(OrderedDict(tensors), path)


def write_checkpoint(folder, fx, tensors):
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write(json.dumps(fixture_config(fx), indent=2) + "\n")
    if fx["fmt"] == "safetensors":
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors)
    elif fx["fmt"] == "sharded":
        write_sharded(folder, tensors, fx)
    elif fx["fmt"] == "bin":
        write_bin(os.path.join(folder, "pytorch_model.bin"), tensors)
    else:
        raise ValueError(fx["fmt"])


# ---------------------------------------------------------------------------
# Goldens and their quality checks
# ---------------------------------------------------------------------------

MIN_REL_MARGIN = 1e-3     # top-1 vs top-2 at each greedy step, relative to |top-1|, with an absolute floor
MIN_ABS_MARGIN = 5e-3
MIN_DISTINCT = 4          # distinct ids in a greedy continuation


def margin_ok(row):
    top2 = torch.topk(row, 2).values
    gap = (top2[0] - top2[1]).item()
    return gap > max(MIN_REL_MARGIN * abs(top2[0].item()), MIN_ABS_MARGIN), gap


def build_golden(fx, model, seed):
    rng = np.random.RandomState(10_000 + seed)
    V = fx["V"]
    n_ids = fx.get("n_ids", 16 + seed % 9)              # 16..24
    input_ids = [int(x) for x in rng.randint(0, V - 1, size=n_ids)]
    logits = ref.forward(model, input_ids)
    problems = []
    std = logits.std(dim=-1).min().item()
    if std < 0.1:
        problems.append(f"logit std {std:.3g} too small")
    g = OrderedDict()
    g["description"] = None
    g["input_ids"] = input_ids
    g["logits"] = logits
    if fx.get("short_ids"):
        short = input_ids[: fx["short_ids"]]
        g["short_input_ids"] = short
        g["short_logits"] = ref.forward(model, short)
    min_gap = None
    if fx.get("greedy", True):
        prompt = [int(x) for x in rng.randint(0, V - 1, size=6)]
        n_new = 14
        cont = ref.greedy(model, prompt, n_new)
        full = ref.forward(model, prompt + cont)
        for step in range(n_new):
            ok, gap = margin_ok(full[len(prompt) - 1 + step])
            min_gap = gap if min_gap is None else min(min_gap, gap)
            if not ok:
                problems.append(f"greedy step {step}: top-2 gap {gap:.3g}")
        if len(set(cont)) < MIN_DISTINCT:
            problems.append(f"greedy continuation {cont} has fewer than {MIN_DISTINCT} distinct ids")
        if (V - 1) in cont:
            problems.append("greedy continuation contains eos")
        g["greedy_prompt"] = prompt
        g["greedy_continuation"] = cont
    return g, problems, min_gap


def fmt7(x):
    return repr(float(f"{x:.7g}"))


def write_golden(path, g):
    lines = ["{"]
    items = list(g.items())
    for k, (key, val) in enumerate(items):
        comma = "," if k < len(items) - 1 else ""
        if isinstance(val, torch.Tensor):
            rows = ["[" + ",".join(fmt7(x) for x in row) + "]" for row in val.tolist()]
            lines.append(f'  "{key}": [')
            lines.extend("    " + r + ("," if i < len(rows) - 1 else "") for i, r in enumerate(rows))
            lines.append("  ]" + comma)
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(val)}{comma}")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def make_fixture(fx, out_dir, log):
    folder = os.path.join(out_dir, fx["name"])
    for attempt in range(50):
        seed = fx["seed"] * 100 + attempt
        master = random_weights(fx, seed)
        tensors = stored_tensors(fx, master)
        write_checkpoint(folder, fx, tensors)
        model = ref.load_model(folder, dtype=torch.float64, warn=lambda m: None)
        g, problems, min_gap = build_golden(fx, model, seed)
        if not problems:
            break
        log(f"  {fx['name']}: seed {seed} rejected: {'; '.join(problems)}")
    else:
        raise RuntimeError(f"{fx['name']}: no acceptable seed")
    fmt_text = {"safetensors": "model.safetensors", "sharded": "2 safetensors shards + index",
                "bin": "pytorch_model.bin"}[fx["fmt"]]
    g["description"] = (
        f"{fx['name']}: {fmt_text}, {fx['dtype']}, {fx['L']} layers, {fx['H']} heads, n_embd {fx['D']}, "
        f"n_inner {fx['F']}, vocab {fx['V']}; {fx['what']}. "
        f"Slopes: {'stored transformer.relative_pe.slopes [H,1] (' + fx['dtype'] + ')' if fx['slopes'] else 'none stored, formula'}. "
        f"Weights seed {seed}. Logits are float64 reference values (rounded to 7 significant digits) "
        f"for every position of input_ids, computed in one full pass"
        + ("; greedy_continuation: argmax of the last position, full recompute per step." if fx.get("greedy", True) else ".")
    )
    write_golden(os.path.join(folder, "golden.json"), g)
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    log(f"{fx['name']}: seed {seed}, {len(g['input_ids'])} ids, "
        f"min greedy gap {min_gap if min_gap is None else round(min_gap, 5)}, {size / 1024:.0f} KiB")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    for fx in FIXTURES:
        if args.only and fx["name"] not in args.only:
            continue
        make_fixture(fx, args.out, lambda m: print(m, file=sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
