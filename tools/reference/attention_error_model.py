#!/usr/bin/env python3
"""How far the fp16/bf16 attention kernels may honestly be from an exact softmax, and how far a
kernel that drops keys is: the numbers behind the tolerance of tests/GptJx.Cuda.Tests/GpuAttentionTests.cs.

The kernel is modelled by its rounding points (kernels/attention_prefill.cu): q, k, v in the 16-bit
type; scores, running max and sum in fp32; probabilities rounded to the type for the P.V product;
the output rounded to the type. The reference is float64 softmax attention on the same rounded
q, k, v. Both use random N(0, 1) data, as the tests do. Prints the worst relative L2 error of a
head's output row, and that of a kernel that attends only the last 512 keys.

    /usr/bin/python3 tools/reference/attention_error_model.py
"""

import math

import torch


def rounded(dtype, x):
    return x.to(dtype).to(torch.float64)


def exact(q, keys, values, p, scale, slope):
    j = torch.arange(p + 1, dtype=torch.float64)
    weights = torch.softmax((keys[: p + 1] @ q) * scale - slope * (p - j), 0)
    return weights @ values[: p + 1]


def modelled_kernel(q, keys, values, p, scale, slope, dtype, last_keys=None):
    j = torch.arange(p + 1, dtype=torch.float64)
    s = (keys[: p + 1].float() @ q.float()).double() * scale - slope * (p - j)
    if last_keys is not None:
        s[: max(0, p + 1 - last_keys)] = -math.inf
    probabilities = torch.exp(s - s.max()).float()
    total = probabilities.double().sum()
    return rounded(dtype, (rounded(dtype, probabilities.double()) @ values[: p + 1]) / total)


def relative(a, b):
    return ((a - b).norm() / b.norm()).item()


def main():
    torch.manual_seed(0)
    for dtype in (torch.bfloat16, torch.float16):
        def data(n, hd):
            return [rounded(dtype, torch.randn(n, hd, dtype=torch.float64)) for _ in range(3)]

        worst = 0.0
        for hd, length, scale in ((80, 130, 8 / 80), (64, 65, 8 / 64), (128, 20, 8 / 128), (16, 70, 8 / 16), (80, 300, 0.1)):
            for slope in (2 ** -4, 2 ** -8, 2 ** -5):
                q, k, v = data(length, hd)
                for p in range(length):
                    worst = max(worst, relative(modelled_kernel(q[p], k, v, p, scale, slope, dtype), exact(q[p], k, v, p, scale, slope)))
        print(f"{dtype}: prefill-sized cases, worst relative L2 error of a row {worst:.2e}")

        positions, hd = 8191, 80
        for slope in (2 ** -8, 2 ** -20):
            q, k, v = data(positions, hd)
            good = dropped = 0.0
            for p in (0, 1, 63, 64, 4000, positions - 2, positions - 1):
                e = exact(q[p], k, v, p, 1 / hd, slope)
                good = max(good, relative(modelled_kernel(q[p], k, v, p, 1 / hd, slope, dtype), e))
                dropped = max(dropped, relative(modelled_kernel(q[p], k, v, p, 1 / hd, slope, dtype, last_keys=512), e))
            print(f"{dtype}: 8191 keys, slope {slope:.3g}: worst {good:.2e}; attending only the last 512 keys: {dropped:.2e}")


if __name__ == "__main__":
    main()
