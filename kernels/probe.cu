// Bandwidth probes for the roofline of `gptjx bench --device cuda` (not used by inference).
//
// Math:    probe_read:  folds every 16-byte word of a into one value per thread (read-only
//                       streaming, the access pattern of decode); writes out[0] only if the
//                       fold hits a value no real buffer produces, so the loads stay live.
//          probe_triad: a[i] = b[i] + s * c[i] (STREAM triad, fp32).
// Layouts: a, b, c contiguous, n16 16-byte words (n4 float4) each; 16-byte aligned.
// Launch:  grid (4 x SMs), block 512; grid-stride loops.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(512) probe_read(const uint4* __restrict__ a, long long n16, unsigned* __restrict__ out) {
    unsigned acc = 0;
    const long long stride = (long long)gridDim.x * blockDim.x;
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    for (; i + 3 * stride < n16; i += 4 * stride) {
        const uint4 v0 = __ldcs(a + i), v1 = __ldcs(a + i + stride), v2 = __ldcs(a + i + 2 * stride), v3 = __ldcs(a + i + 3 * stride);
        acc ^= v0.x ^ v0.y ^ v0.z ^ v0.w ^ v1.x ^ v1.y ^ v1.z ^ v1.w ^ v2.x ^ v2.y ^ v2.z ^ v2.w ^ v3.x ^ v3.y ^ v3.z ^ v3.w;
    }
    for (; i < n16; i += stride) {
        const uint4 v = __ldcs(a + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x9e3779b9u) out[0] = acc;
}

extern "C" __global__ void __launch_bounds__(512) probe_triad(float4* __restrict__ a, const float4* __restrict__ b, const float4* __restrict__ c,
                                                             float s, long long n4) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += stride) {
        const float4 x = __ldcs(b + i), y = __ldcs(c + i);
        __stcs(a + i, make_float4(x.x + s * y.x, x.y + s * y.y, x.z + s * y.z, x.w + s * y.w));
    }
}
