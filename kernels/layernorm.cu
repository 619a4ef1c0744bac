// LayerNorm / RMSNorm of the fp32 residual stream, written in the GEMM input type.
//
// Math:    LayerNorm: mean = sum_c x[r,c] / D; var = sum_c (x[r,c] - mean)^2 / D
//                     y[r,c] = (x[r,c] - mean) * rsqrt(var + eps) * gain[c] + bias[c]
//          RMSNorm:   y[r,c] = x[r,c] * rsqrt(sum_c x[r,c]^2 / D + eps) * gain[c]
//          Statistics in fp32 (two passes over the row, the second from L1/L2).
//          bias may be null (no bias).
// Layouts: x [R, D] fp32; gain, bias [D] fp32; y [R, D] fp32 / fp16 / bf16 (suffix = output type).
// Launch:  grid (R), block 256 (any multiple of 32 up to 1024); one block per row.
#include "common.cuh"

template <typename TOut>
__device__ void layer_norm(const float* __restrict__ x, const float* __restrict__ gain, const float* __restrict__ bias,
                           int width, float eps, TOut* __restrict__ y) {
    __shared__ float scratch[33];
    const float* row = x + (size_t)blockIdx.x * width;
    TOut* out = y + (size_t)blockIdx.x * width;
    float s = 0.f;
    for (int c = threadIdx.x; c < width; c += blockDim.x) s += row[c];
    const float mean = block_sum(s, scratch) / width;
    float v = 0.f;
    for (int c = threadIdx.x; c < width; c += blockDim.x) { float d = row[c] - mean; v += d * d; }
    const float rstd = rsqrtf(block_sum(v, scratch) / width + eps);
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
        float r = (row[c] - mean) * rstd * gain[c];
        if (bias) r += bias[c];
        out[c] = from_f32<TOut>(r);
    }
}

template <typename TOut>
__device__ void rms_norm(const float* __restrict__ x, const float* __restrict__ gain, int width, float eps, TOut* __restrict__ y) {
    __shared__ float scratch[33];
    const float* row = x + (size_t)blockIdx.x * width;
    TOut* out = y + (size_t)blockIdx.x * width;
    float s = 0.f;
    for (int c = threadIdx.x; c < width; c += blockDim.x) s += row[c] * row[c];
    const float rstd = rsqrtf(block_sum(s, scratch) / width + eps);
    for (int c = threadIdx.x; c < width; c += blockDim.x) out[c] = from_f32<TOut>(row[c] * rstd * gain[c]);
}

#define LN_INSTANCE(suffix, T) \
extern "C" __global__ void layer_norm_##suffix(const float* x, const float* gain, const float* bias, int width, float eps, T* y) { layer_norm<T>(x, gain, bias, width, eps, y); } \
extern "C" __global__ void rms_norm_##suffix(const float* x, const float* gain, int width, float eps, T* y) { rms_norm<T>(x, gain, width, eps, y); }

LN_INSTANCE(f32, float)
LN_INSTANCE(f16, __half)
LN_INSTANCE(bf16, bf16)
