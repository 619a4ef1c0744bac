#!/usr/bin/env python3
"""Writes tiny torch.save checkpoints that the C# checkpoint tests read.

The point is to test the reader against bytes real PyTorch wrote, without
needing Python when the tests run. Run with a Python that has torch
(Debian's python3-torch works) from the repository root:

    python3 tools/reference/make_checkpoint_samples.py tests/fixtures/checkpoint-samples

It writes:
  state_dict.bin       fp32/fp16/bf16 tensors, a module state dict (so the
                       pickle carries _metadata), two names sharing one storage
                       (tied weights), a view with a storage offset into a
                       shared storage, a 0-d tensor and an empty tensor;
  noncontiguous.bin    a transposed (non-contiguous) tensor, which must be refused;
  int64.bin            an int64 tensor, an unsupported dtype;
  expected.json        for each tensor of state_dict.bin: dtype, shape and its
                       contiguous little-endian bytes in hex.
"""
import json
import os
import sys
from collections import OrderedDict

import torch


def contiguous_hex(t):
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex()


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)

    linear = torch.nn.Linear(3, 2)  # a real module state dict carries _metadata
    sd = linear.state_dict()
    sd["f32.matrix"] = torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1
    sd["f16.vector"] = torch.tensor([1.0, -2.5, 65504.0, 1e-4], dtype=torch.float16)
    sd["bf16.matrix"] = torch.tensor([[1.0, -3.0], [0.15625, 1e30], [-0.0, 2.0]], dtype=torch.bfloat16)
    wte = torch.randn(4, 3)
    sd["wte.weight"] = wte
    sd["lm_head.weight"] = wte  # tied: same tensor, one storage
    base = torch.arange(12, dtype=torch.float16)
    sd["base.all"] = base
    sd["base.view"] = base[4:10].view(2, 3)  # storage offset 4 into base's storage
    sd["scalar"] = torch.tensor(3.25)
    sd["empty"] = torch.zeros(0, 5)
    torch.save(sd, os.path.join(out, "state_dict.bin"))

    expected = OrderedDict()
    for name, t in sd.items():
        expected[name] = {
            "dtype": {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[t.dtype],
            "shape": list(t.shape),
            "hex": contiguous_hex(t),
        }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")

    torch.save({"transposed": torch.arange(12, dtype=torch.float32).reshape(3, 4).t()},
               os.path.join(out, "noncontiguous.bin"))
    torch.save({"position_ids": torch.arange(4)}, os.path.join(out, "int64.bin"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/checkpoint-samples")
