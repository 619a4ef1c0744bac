// SwiGLU gate on the output of the fused c_fc|c_fc2 GEMM (biases already added).
//
// Math:    y[r,c] = u * silu(g) = u * g / (1 + exp(-g)),  u = x[r, c], g = x[r, F + c]
//          computed in fp32.
// Layouts: x [R, 2F] row-major ([u | g] per row); y [R, F]; both fp16 or bf16 (suffix).
// Launch:  grid (ceil(F / 256), R), block 256.
#include "common.cuh"

template <typename T>
__device__ void swiglu(const T* __restrict__ x, int width, T* __restrict__ y) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= width) return;
    const T* row = x + (size_t)blockIdx.y * 2 * width;
    const float u = to_f32(row[c]);
    const float g = to_f32(row[width + c]);
    y[(size_t)blockIdx.y * width + c] = from_f32<T>(u * (g / (1.f + __expf(-g))));
}

extern "C" __global__ void swiglu_f32(const float* x, int width, float* y) { swiglu(x, width, y); }
extern "C" __global__ void swiglu_f16(const __half* x, int width, __half* y) { swiglu(x, width, y); }
extern "C" __global__ void swiglu_bf16(const bf16* x, int width, bf16* y) { swiglu(x, width, y); }
