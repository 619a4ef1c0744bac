// Row gather (selects the positions that need logits).
//
// Math:    y[i, c] = x[rows[i], c]
// Layouts: x [R, C], y [n, C] row-major, same element type: the kernel copies
//          32-bit words (gather_rows_b32, fp32) or 16-bit halves (gather_rows_b16, fp16/bf16).
//          rows [n] int32.
// Launch:  grid (ceil(C / 256), n), block 256.
#include "common.cuh"

template <typename T>
__device__ void gather_rows(const T* __restrict__ x, const int* __restrict__ rows, int cols, T* __restrict__ y) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    y[(size_t)blockIdx.y * cols + c] = x[(size_t)rows[blockIdx.y] * cols + c];
}

extern "C" __global__ void gather_rows_b32(const uint32_t* x, const int* rows, int cols, uint32_t* y) { gather_rows(x, rows, cols, y); }
extern "C" __global__ void gather_rows_b16(const uint16_t* x, const int* rows, int cols, uint16_t* y) { gather_rows(x, rows, cols, y); }
