#!/usr/bin/env python3
"""How far a correct fp16/bf16 GPU forward pass lands from the golden logits: the numbers behind the
tolerance of tests/GptJx.Cuda.Tests/GpuModelTests.cs.

The 16-bit pass is modelled by its rounding points (src/GptJx/Model/Transformer.cs on the CUDA
backend): weights and the embedding table in the 16-bit type; biases, slopes, LayerNorm statistics,
the residual stream and the logits in fp32 or better; the LayerNorm outputs, q/k/v, the attention
probabilities (for P.V) and output, [u | g] and the SwiGLU output rounded to the type. Everything
else is float64. Prints, per golden fixture, the relative L2 error of all its logits against
golden.json, the worst row, and how often the top-1 token agrees.

    /usr/bin/python3 tools/reference/forward_error_model.py
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gptjx_reference as ref  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "golden")


def modelled_forward(model, ids, dtype):
    c, w = model.config, model.w

    def r(x):
        return x.to(dtype).to(torch.float64)

    def norm(x, name):
        return r(ref.layer_norm(x, w[name + ".weight"], w[name + ".bias"], c.layer_norm_epsilon))

    def linear(x, name):
        return x @ r(w[name + ".weight"]) + w[name + ".bias"]

    T, D, H, d = len(ids), c.n_embd, c.n_head, c.head_dim
    h = r(w["transformer.wte.weight"])[torch.tensor(ids)] * c.mup_embeddings_scale
    pos = torch.arange(T, dtype=torch.float64)
    slopes = model.slopes / ref.alibi_divisor(c.alibi_scaling, key_length=T)
    alibi = -slopes[:, None, None] * (pos[:, None] - pos[None, :])[None]
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    power = 1.0 if c.mup_scale_qk_dot_by_d else 0.5
    for l in range(c.n_layer):
        pre = f"transformer.h.{l}."
        qkv = r(linear(norm(h, pre + "ln_1"), pre + "attn.c_attn"))
        q, k, v = (x.reshape(T, H, d).transpose(0, 1) for x in (qkv[:, :D], qkv[:, D:2 * D], qkv[:, 2 * D:]))
        s = q @ k.transpose(1, 2)
        if c.scale_attn_weights:
            s = s / (d ** power)
        if c.scale_attn_by_inverse_layer_idx:
            s = s / (l + 1)
        s = (s + alibi).masked_fill(future, float("-inf"))
        p = torch.exp(s - s.max(-1, keepdim=True).values)
        o = r((r(p) @ v) / p.sum(-1, keepdim=True)).transpose(0, 1).reshape(T, D)
        h = h + linear(o, pre + "attn.c_proj")
        m = norm(h, pre + "ln_2")
        u, g = r(linear(m, pre + "mlp.c_fc")), r(linear(m, pre + "mlp.c_fc2"))
        h = h + linear(r(u * ref.silu(g)), pre + "mlp.c_proj")
    return (norm(h, "transformer.ln_f") @ r(w["lm_head.weight"]).T) * (c.mup_output_alpha * c.mup_width_scale)


def main():
    torch.set_num_threads(1)
    for name in sorted(os.listdir(GOLDEN)):
        folder = os.path.join(GOLDEN, name)
        if not os.path.isdir(folder):
            continue
        model = ref.load_model(folder, warn=lambda m: None)
        with open(os.path.join(folder, "golden.json")) as f:
            golden = json.load(f)
        expected = torch.tensor(golden["logits"], dtype=torch.float64)
        parts = []
        for dtype in (torch.float16, torch.bfloat16):
            got = modelled_forward(model, golden["input_ids"], dtype)
            overall = ((got - expected).norm() / expected.norm()).item()
            worst_row = max(((got[i] - expected[i]).norm() / expected[i].norm()).item() for i in range(len(expected)))
            top1 = (got.argmax(-1) == expected.argmax(-1)).double().mean().item()
            parts.append(f"{str(dtype)[6:]} {overall:.2e} (worst row {worst_row:.2e}, top-1 {top1:.0%})")
        print(f"{name:22} " + " | ".join(parts))


if __name__ == "__main__":
    main()
