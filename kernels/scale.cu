// In-place scaling (the logits' muP output multiplier).
//
// Math:    x[i] *= factor, computed in fp32.
// Layouts: x [n] contiguous, fp32 / fp16 / bf16 (suffix).
// Launch:  grid (min(ceil(n / 256), 65535)), block 256; grid-stride loop.
#include "common.cuh"

template <typename T>
__device__ void scale_inplace(T* x, long long n, float factor) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] = from_f32<T>(to_f32(x[i]) * factor);
}

extern "C" __global__ void scale_f32(float* x, long long n, float factor) { scale_inplace(x, n, factor); }
extern "C" __global__ void scale_f16(__half* x, long long n, float factor) { scale_inplace(x, n, factor); }
extern "C" __global__ void scale_bf16(bf16* x, long long n, float factor) { scale_inplace(x, n, factor); }
