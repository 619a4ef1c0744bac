// KV-cache append: the k and v columns of the fused QKV output are written into
// the cache at each sequence's positions start .. start + length - 1.
//
// Math:    for each sequence s, new token i < length, head h, dim d:
//            K[slot][h][start + i][d] = qkv[first_row + i][D + h * hd + d]
//            V[slot][h][start + i][d] = qkv[first_row + i][2D + h * hd + d]
// Layouts: qkv [rows, 3D] row-major (q | k | v), D = heads * hd;
//          K, V (one layer) [slots][heads][max_pos][hd], same element type as qkv;
//          desc: SequenceDesc[count].
// Launch:  grid (max length over the batch, count), block 256; each block copies
//          one token's k and v rows (2D elements).
#include "common.cuh"

template <typename T>
__device__ void kv_append(const T* __restrict__ qkv, const SequenceDesc* __restrict__ desc, int heads, int hd,
                          int max_pos, T* __restrict__ kc, T* __restrict__ vc) {
    const SequenceDesc s = desc[blockIdx.y];
    const int i = blockIdx.x;
    if (i >= s.length) return;
    const int pos = s.start + i;
    if (pos >= max_pos) return;
    const int width = heads * hd;
    const T* row = qkv + (size_t)(s.first_row + i) * 3 * width;
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
        const int h = c / hd, d = c - h * hd;
        const size_t dst = (((size_t)s.slot * heads + h) * max_pos + pos) * hd + d;
        kc[dst] = row[width + c];
        vc[dst] = row[2 * width + c];
    }
}

extern "C" __global__ void kv_append_f16(const __half* qkv, const SequenceDesc* desc, int heads, int hd, int max_pos, __half* kc, __half* vc) {
    kv_append(qkv, desc, heads, hd, max_pos, kc, vc);
}
extern "C" __global__ void kv_append_bf16(const bf16* qkv, const SequenceDesc* desc, int heads, int hd, int max_pos, bf16* kc, bf16* vc) {
    kv_append(qkv, desc, heads, hd, max_pos, kc, vc);
}
