// Bias broadcast before a GEMM, so the GEMM itself can run with beta = 1.
//
// Math:    y[r,c] = (accumulate ? y[r,c] : 0) + bias[c]
//          Linear(x, W, b, accumulate) is then this kernel followed by
//          cublasGemmEx(alpha = 1, beta = 1): y = x W + b (+ y). The residual add
//          happens in fp32 when y is the fp32 residual stream.
// Layouts: y [R, N] row-major fp32 / fp16 / bf16 (suffix); bias [N] fp32.
// Launch:  grid (ceil(N / 256), R), block 256.
#include "common.cuh"

template <typename T>
__device__ void bias_rows(T* __restrict__ y, const float* __restrict__ bias, int cols, int accumulate) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    T* p = y + (size_t)blockIdx.y * cols + c;
    float v = bias[c];
    if (accumulate) v += to_f32(*p);
    *p = from_f32<T>(v);
}

extern "C" __global__ void bias_rows_f32(float* y, const float* bias, int cols, int accumulate) { bias_rows(y, bias, cols, accumulate); }
extern "C" __global__ void bias_rows_f16(__half* y, const float* bias, int cols, int accumulate) { bias_rows(y, bias, cols, accumulate); }
extern "C" __global__ void bias_rows_bf16(bf16* y, const float* bias, int cols, int accumulate) { bias_rows(y, bias, cols, accumulate); }
