// Embedding gather into the fp32 residual stream.
//
// Math:    out[t, c] = float(table[ids[t], c]) * scale
// Layouts: table [V, D] row-major in the weight type (fp16 or bf16); ids [T] int32;
//          out [T, D] fp32 row-major. An id outside [0, V) writes a row of NaN so the
//          error is visible instead of reading out of bounds.
// Launch:  grid (T), block 256; each block copies one row.
#include "common.cuh"

template <typename T>
__device__ void embed_gather(const T* __restrict__ table, const int* __restrict__ ids, int vocab, int width,
                             float scale, float* __restrict__ out) {
    const int t = blockIdx.x;
    const int id = ids[t];
    float* dst = out + (size_t)t * width;
    if (id < 0 || id >= vocab) {
        for (int c = threadIdx.x; c < width; c += blockDim.x) dst[c] = __int_as_float(0x7fc00000);
        return;
    }
    const T* src = table + (size_t)id * width;
    for (int c = threadIdx.x; c < width; c += blockDim.x) dst[c] = to_f32(src[c]) * scale;
}

extern "C" __global__ void embed_gather_f16(const __half* table, const int* ids, int vocab, int width, float scale, float* out) {
    embed_gather(table, ids, vocab, width, scale, out);
}
extern "C" __global__ void embed_gather_bf16(const bf16* table, const int* ids, int vocab, int width, float scale, float* out) {
    embed_gather(table, ids, vocab, width, scale, out);
}
