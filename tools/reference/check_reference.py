#!/usr/bin/env python3
"""Self-check of the reference and of the golden fixtures.

    python3 tools/reference/check_reference.py [--fixtures tests/fixtures/golden]

Checks, each printed as PASS/FAIL:
  1. ALiBi slopes: the formula for H = 1..64 against a second restatement (the
     geometric series of the ALiBi paper), and against hand-computed values for
     H = 6, 12 and 32.
  2. Every fixture's stored tensors read back bit-exactly as the generator's
     seeded weights rounded to the checkpoint dtype (bf16 also decoded by hand
     from the raw file bytes), and stored slopes equal the formula rounded to
     that dtype.
  3. A naive restatement of the forward pass (numpy, one position at a time,
     a growing list of keys/values per layer, explicit per-head attention with
     math.exp) agrees with the reference on every fixture.
  4. golden.json agrees with a fresh reference run (to its 7 digits), and the
     greedy continuation equals the argmax of the reference logits of
     prompt + continuation at every step, and the step-by-step greedy().
  5. The command line prints the same last-position logits as golden.json.
  6. Load errors: unsupported activation, missing tensor, slopes beyond rounding.
Exit status 0 when everything passes.
"""

import argparse
import contextlib
import io
import json
import math
import os
import re
import shutil
import struct
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gptjx_reference as ref  # noqa: E402
import make_fixtures as mf  # noqa: E402

FAILURES = []


def check(name, ok, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}  {name}{(': ' + detail) if detail else ''}")
    if not ok:
        FAILURES.append(name)


# ---------------------------------------------------------------------------
# 1. Slopes
# ---------------------------------------------------------------------------

def slopes_geometric(n):
    """ALiBi paper's form: a geometric sequence starting at 2^(-8/n) with that ratio."""
    def pow2(m):
        start = 2.0 ** (-(2.0 ** -(math.log2(m) - 3)))
        return [start * start ** i for i in range(m)]
    if math.log2(n).is_integer():
        return pow2(n)
    closest = 2 ** math.floor(math.log2(n))
    return pow2(closest) + slopes_geometric(2 * closest)[0::2][: n - closest]


def check_slopes():
    worst = 0.0
    for H in range(1, 65):
        a, b = ref.alibi_slopes(H), slopes_geometric(H)
        assert len(a) == H and len(b) == H
        worst = max(worst, max(abs(x - y) / y for x, y in zip(a, b)))
    check("slopes H=1..64 match the geometric-series restatement", worst < 1e-14, f"max rel diff {worst:.2e}")
    hand = {
        6: [1 / 4, 1 / 16, 1 / 64, 1 / 256, 1 / 2, 1 / 8],
        12: [2.0 ** -k for k in range(1, 9)] + [2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5],
        32: [2.0 ** (-(k + 1) / 4) for k in range(32)],
        1: [2.0 ** -8],
        3: [2.0 ** -4, 2.0 ** -8, 2.0 ** -2],
    }
    for H, want in hand.items():
        got = ref.alibi_slopes(H)
        ok = len(got) == H and all(abs(g - w) <= 1e-15 * w for g, w in zip(got, want))
        check(f"slopes H={H} equal the hand-computed values", ok, f"{got}" if not ok else "")


# ---------------------------------------------------------------------------
# 2. Stored tensors
# ---------------------------------------------------------------------------

def fixture_seed(golden):
    m = re.search(r"Weights seed (\d+)", golden["description"])
    return int(m.group(1))


def check_stored(fx, folder, golden):
    seed = fixture_seed(golden)
    want = mf.stored_tensors(fx, mf.random_weights(fx, seed))
    got = ref.read_checkpoint_tensors(folder)
    same_names = sorted(want) == sorted(got)
    bad = [n for n in want if n in got and not (want[n].dtype == got[n].dtype and torch.equal(want[n], got[n]))]
    check(f"{fx['name']}: stored tensors read back bit-exactly ({len(got)} tensors)",
          same_names and not bad, f"names differ" if not same_names else (f"differs: {bad[:3]}" if bad else ""))
    if fx["slopes"]:
        s = got["transformer.relative_pe.slopes"]
        formula = torch.tensor(ref.alibi_slopes(fx["H"]), dtype=torch.float64).to(s.dtype).reshape(-1, 1)
        check(f"{fx['name']}: stored slopes [{fx['H']},1] {s.dtype} = formula rounded to that dtype",
              tuple(s.shape) == (fx["H"], 1) and torch.equal(s, formula))
    if fx["dtype"] == "bfloat16" and fx["fmt"] == "safetensors":
        # Decode one bf16 tensor by hand from the raw file: value bits = u16 << 16 as float32.
        path = os.path.join(folder, "model.safetensors")
        blob = open(path, "rb").read()
        (hl,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8:8 + hl])
        name = "transformer.h.0.attn.c_attn.weight"
        b, e = header[name]["data_offsets"]
        u16 = np.frombuffer(blob[8 + hl + b: 8 + hl + e], dtype="<u2").astype(np.uint32)
        by_hand = (u16 << 16).view(np.float32).astype(np.float64).reshape(header[name]["shape"])
        model = ref.load_model(folder, warn=lambda m: None)
        check(f"{fx['name']}: bf16 upcast equals hand decoding of the raw bytes",
              np.array_equal(by_hand, model.w[name].numpy()))


# ---------------------------------------------------------------------------
# 3. Naive restatement: one position at a time, explicit attention loops.
# ---------------------------------------------------------------------------

def naive_logits(folder, ids):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    W = {k: v.to(torch.float64).numpy() for k, v in ref.read_checkpoint_tensors(folder).items()}
    D, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    d = D // H
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    tied = cfg.get("tie_word_embeddings", True)
    head = W["transformer.wte.weight"] if tied else W["lm_head.weight"]
    if "transformer.relative_pe.slopes" in W:
        slopes = [float(x) for x in W["transformer.relative_pe.slopes"][:, 0]]
    else:
        slopes = slopes_geometric(H)
    # alibi_scaling: every row of a one-pass run attends len(ids) keys.
    sc = cfg.get("alibi_scaling") or {}
    if "factor" in sc:
        slopes = [s / sc["factor"] for s in slopes]
    elif "train_seq_len" in sc and len(ids) > sc["train_seq_len"]:
        slopes = [s / (len(ids) / sc["train_seq_len"]) for s in slopes]
    qk_div = 1.0
    if cfg.get("scale_attn_weights", True):
        qk_div = float(d) if cfg.get("mup_scale_qk_dot_by_d", False) else math.sqrt(d)

    def ln(x, g, b):
        mu = sum(x) / len(x)
        var = sum((xi - mu) ** 2 for xi in x) / len(x)
        return np.array([(xi - mu) / math.sqrt(var + eps) for xi in x]) * g + b

    keys = [[] for _ in range(L)]
    values = [[] for _ in range(L)]
    out = []
    for i, tok in enumerate(ids):
        x = W["transformer.wte.weight"][tok] * cfg["mup_embeddings_scale"]
        for l in range(L):
            p = f"transformer.h.{l}."
            a = ln(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"])
            qkv = a @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
            q, k, v = qkv[:D], qkv[D:2 * D], qkv[2 * D:]
            keys[l].append(k)
            values[l].append(v)
            o = np.zeros(D)
            for h in range(H):
                hs = slice(h * d, (h + 1) * d)
                scores = []
                for j in range(i + 1):
                    s = float(np.dot(q[hs], keys[l][j][hs])) / qk_div
                    if cfg.get("scale_attn_by_inverse_layer_idx", False):
                        s /= (l + 1)
                    s -= slopes[h] * (i - j)
                    scores.append(s)
                m = max(scores)
                e = [math.exp(s - m) for s in scores]
                z = sum(e)
                for j in range(i + 1):
                    o[hs] += (e[j] / z) * values[l][j][hs]
            x = x + o @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
            mm = ln(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"])
            up = mm @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"]
            gate = mm @ W[p + "mlp.c_fc2.weight"] + W[p + "mlp.c_fc2.bias"]
            act = np.array([u * (g / (1.0 + math.exp(-g))) for u, g in zip(up, gate)])
            x = x + act @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
        f = ln(x, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"])
        out.append((head @ f) * cfg["mup_output_alpha"] * cfg["mup_width_scale"])
    return np.array(out)


# ---------------------------------------------------------------------------
# 4, 5. Goldens, greedy, command line
# ---------------------------------------------------------------------------

def close7(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(np.all(np.abs(a - b) <= 5.1e-7 * np.abs(b) + 1e-12)), float(np.max(np.abs(a - b)))


def check_fixture(fx, root):
    name = fx["name"]
    folder = os.path.join(root, name)
    golden = json.load(open(os.path.join(folder, "golden.json")))
    check_stored(fx, folder, golden)

    model = ref.load_model(folder, warn=lambda m: None)
    ids = golden["input_ids"]
    logits = ref.forward(model, ids).numpy()
    check(f"{name}: golden logits shape [{len(ids)}, {fx['V']}]",
          np.asarray(golden["logits"]).shape == (len(ids), fx["V"]))
    ok, diff = close7(golden["logits"], logits)
    check(f"{name}: golden.json logits = fresh reference run (7 digits)", ok, f"max abs diff {diff:.2e}")

    naive = naive_logits(folder, ids)
    diff = float(np.max(np.abs(naive - logits)))
    check(f"{name}: naive per-position restatement = reference", diff < 1e-10, f"max abs diff {diff:.2e}")

    if "short_input_ids" in golden:
        short = golden["short_input_ids"]
        ok, diff = close7(golden["short_logits"], ref.forward(model, short).numpy())
        check(f"{name}: short_logits = fresh reference run", ok, f"max abs diff {diff:.2e}")
        diff = float(np.max(np.abs(naive_logits(folder, short) - ref.forward(model, short).numpy())))
        check(f"{name}: naive = reference on short_input_ids", diff < 1e-10, f"max abs diff {diff:.2e}")
        # The scaling must actually matter: position p of the full run differs from the short run.
        d = float(np.max(np.abs(np.asarray(golden["short_logits"]) - np.asarray(golden["logits"])[:len(short)])))
        check(f"{name}: train_seq_len divisor changes the logits of the shared prefix", d > 1e-3, f"{d:.3g}")

    if "greedy_prompt" in golden:
        prompt, cont = golden["greedy_prompt"], golden["greedy_continuation"]
        full = ref.forward(model, prompt + cont)
        argmaxes = [int(torch.argmax(full[len(prompt) - 1 + s]).item()) for s in range(len(cont))]
        check(f"{name}: greedy continuation = argmax of reference logits at each step", argmaxes == cont)
        check(f"{name}: greedy continuation = step-by-step greedy()", ref.greedy(model, prompt, len(cont)) == cont)
        check(f"{name}: greedy continuation has {len(set(cont))} distinct ids of {len(cont)}",
              len(set(cont)) >= 4 and 12 <= len(cont) <= 16)

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = ref.main(["--model", folder, "--ids", ",".join(map(str, ids))])
    printed = json.loads(buf.getvalue())
    ok, diff = close7(printed["logits"], golden["logits"][-1]) if rc == 0 else (False, float("nan"))
    check(f"{name}: command line last-position logits = golden", ok and printed["ids"] == ids)


# ---------------------------------------------------------------------------
# 6. Load errors
# ---------------------------------------------------------------------------

def expect_error(label, fn, needle):
    try:
        fn()
    except (ref.ConfigError, ref.CheckpointError) as e:
        check(label, needle in str(e), str(e))
        return
    check(label, False, "no error raised")


def check_errors(root):
    src = os.path.join(root, "tiny-f32")
    tmp = tempfile.mkdtemp()
    try:
        bad = os.path.join(tmp, "m")
        shutil.copytree(src, bad)
        cfg = json.load(open(os.path.join(bad, "config.json")))
        cfg["activation_function"] = "gelu_new"
        json.dump(cfg, open(os.path.join(bad, "config.json"), "w"))
        expect_error("unsupported activation is a config error naming the key",
                     lambda: ref.load_model(bad), "activation_function")

        shutil.rmtree(bad)
        shutil.copytree(src, bad)
        t = ref.read_checkpoint_tensors(bad)
        del t["transformer.h.1.mlp.c_fc2.bias"]
        mf.write_safetensors(os.path.join(bad, "model.safetensors"), t)
        expect_error("missing tensor is an error naming it", lambda: ref.load_model(bad),
                     "transformer.h.1.mlp.c_fc2.bias")

        t = ref.read_checkpoint_tensors(src)
        t["transformer.relative_pe.slopes"] = t["transformer.relative_pe.slopes"] * 1.01
        mf.write_safetensors(os.path.join(bad, "model.safetensors"), t)
        expect_error("slopes 1% off the formula are an error", lambda: ref.load_model(bad), "relative_pe.slopes")
    finally:
        shutil.rmtree(tmp)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default=mf.DEFAULT_OUT)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    check_slopes()
    for fx in mf.FIXTURES:
        check_fixture(fx, args.fixtures)
    check_errors(args.fixtures)
    print(f"\n{'ALL PASSED' if not FAILURES else str(len(FAILURES)) + ' FAILED'}")
    return 0 if not FAILURES else 1


if __name__ == "__main__":
    sys.exit(main())
