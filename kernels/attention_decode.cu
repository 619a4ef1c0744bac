// Fused causal ALiBi attention for decode (one new token per sequence) over the
// KV cache, flash-decoding style: the context is split into chunks handled by
// separate blocks, then a combine kernel merges them. The chunk length follows the
// context (read from the descriptors on the device, so a replayed graph adapts):
//   chunk = min(256, max(32, round_up(ceil((p + 1) / target_splits), 32))),
//   splits used = ceil((p + 1) / chunk) <= max(target_splits, ceil((p + 1) / 256)).
//
// Math:    p = start (position of the single new token, already appended to the cache);
//            score[j] = (q . k_j) * score_scale - slopes[h] * alibi_scale * (p - j), j in 0..p
//          split kernel, chunk c covering keys [chunk c, min(chunk (c + 1), p + 1)):
//            m_c = max_j score[j];  l_c = sum_j exp(score[j] - m_c);  o_c = sum_j exp(score[j] - m_c) v_j
//            (blocks past the used splits return at once; the combine reads only the used ones)
//          combine:  M = max_c m_c;  out = sum_c exp(m_c - M) o_c / sum_c exp(m_c - M) l_c
//          All in fp32; the output is rounded to the input type.
// Layouts: qkv [rows, 3D] row-major (q of sequence s in row first_row); kc, vc: this
//          layer's cache [slots][heads][max_pos][HD]; desc SequenceDesc[count] (length 1);
//          slopes [heads] fp32; partial fp32 [count][heads][max_splits][HD + 2] holding
//          (m, l, o[0..HD)); out [rows, D] in the input type.
// Launch:  split:   grid (splits, heads, count), block 128; static smem
//                   (HD + 256 + (128 / (HD / 8)) * HD + 33) floats. Keys: one thread per position,
//                   16-byte loads; values: HD / 8 lanes per position, 16-byte loads, so a warp
//                   reads whole rows. splits >= the most any sequence uses (a captured graph
//                   launches max_splits = ceil(max_pos / 256)); target_splits <= max_splits.
//          combine: grid (heads, count), block 128 (HD <= 128).
#include "common.cuh"

#define CHUNK 256
#define THREADS 128

__device__ __forceinline__ int decode_chunk(int keys, int target_splits) {
    int c = (keys + target_splits - 1) / target_splits;
    c = (c + 31) & ~31;
    return min(CHUNK, max(32, c));
}

template <typename T, int HD>
__device__ __forceinline__ void attention_decode_split(const T* __restrict__ qkv, const T* __restrict__ kc, const T* __restrict__ vc,
                                                       const SequenceDesc* __restrict__ desc, const float* __restrict__ slopes,
                                                       int heads, int max_pos, int max_splits, int target_splits, float score_scale,
                                                       float* __restrict__ partial) {
    constexpr int V8 = HD / 8, GROUPS = THREADS / V8;
    __shared__ float qs[HD];
    __shared__ float ps[CHUNK];
    __shared__ float red[GROUPS * HD];
    __shared__ float scratch[33];

    const SequenceDesc s = desc[blockIdx.z];
    const int h = blockIdx.y, split = blockIdx.x, tid = threadIdx.x;
    const int qpos = s.start + s.length - 1;
    const int chunk = decode_chunk(qpos + 1, target_splits);
    const int k0 = split * chunk, k1 = min(k0 + chunk, qpos + 1);
    if (k0 >= k1) return;  // past the splits this sequence uses
    float* part = partial + (((size_t)blockIdx.z * heads + h) * max_splits + split) * (HD + 2);
    const int width = heads * HD;
    const T* q = qkv + (size_t)(s.first_row + s.length - 1) * 3 * width + h * HD;
    for (int d = tid; d < HD; d += THREADS) qs[d] = to_f32(q[d]);
    __syncthreads();

    const float slope = slopes[h] * s.alibi_scale;
    const size_t head_base = ((size_t)s.slot * heads + h) * max_pos;
    float local_max = -INFINITY;
    for (int j = k0 + tid; j < k0 + chunk; j += THREADS) {
        float x = -INFINITY;
        if (j < k1) {
            const uint4* kp = reinterpret_cast<const uint4*>(kc + (head_base + j) * HD);
            float dot = 0.f;
#pragma unroll
            for (int c = 0; c < V8; ++c) {
                const uint4 w = kp[c];
                const T* e = reinterpret_cast<const T*>(&w);
#pragma unroll
                for (int t = 0; t < 8; ++t) dot += to_f32(e[t]) * qs[c * 8 + t];
            }
            x = dot * score_scale - slope * (float)(qpos - j);
        }
        ps[j - k0] = x;
        local_max = fmaxf(local_max, x);
    }
    const float m = block_max(local_max, scratch);
    float local_sum = 0.f;
    for (int i = tid; i < chunk; i += THREADS) {
        const float x = ps[i];
        const float p = x == -INFINITY ? 0.f : __expf(x - m);
        ps[i] = p;
        local_sum += p;
    }
    const float l = block_sum(local_sum, scratch);  // also orders the ps writes before the reads below

    // P V: lanes vl of group g read 8 consecutive dims of position j (a group reads a whole row).
    const int vl = tid % V8, group = tid / V8;
    if (group < GROUPS) {
        float a[8];
#pragma unroll
        for (int t = 0; t < 8; ++t) a[t] = 0.f;
        for (int j = k0 + group; j < k1; j += GROUPS) {
            const float p = ps[j - k0];
            const uint4 w = *reinterpret_cast<const uint4*>(vc + (head_base + j) * HD + 8 * vl);
            const T* e = reinterpret_cast<const T*>(&w);
#pragma unroll
            for (int t = 0; t < 8; ++t) a[t] += p * to_f32(e[t]);
        }
#pragma unroll
        for (int t = 0; t < 8; ++t) red[group * HD + 8 * vl + t] = a[t];
    }
    __syncthreads();
    for (int d = tid; d < HD; d += THREADS) {
        float o = 0.f;
#pragma unroll
        for (int g = 0; g < GROUPS; ++g) o += red[g * HD + d];
        part[2 + d] = o;
    }
    if (tid == 0) { part[0] = m; part[1] = l; }
}

template <typename T, int HD>
__device__ __forceinline__ void attention_decode_combine(const float* __restrict__ partial, const SequenceDesc* __restrict__ desc,
                                                         int heads, int max_splits, int target_splits, T* __restrict__ out) {
    const int h = blockIdx.x, z = blockIdx.y, d = threadIdx.x;
    if (d >= HD) return;
    const SequenceDesc s = desc[z];
    const int keys = s.start + s.length;
    const int chunk = decode_chunk(keys, target_splits);
    const int splits = min(max_splits, (keys + chunk - 1) / chunk);
    const float* base = partial + ((size_t)z * heads + h) * max_splits * (HD + 2);
    float M = -INFINITY;
    for (int c = 0; c < splits; ++c) M = fmaxf(M, base[c * (HD + 2)]);
    float L = 0.f, o = 0.f;
    for (int c = 0; c < splits; ++c) {
        const float mc = base[c * (HD + 2)];
        if (mc == -INFINITY) continue;
        const float w = __expf(mc - M);
        L += w * base[c * (HD + 2) + 1];
        o += w * base[c * (HD + 2) + 2 + d];
    }
    out[(size_t)(s.first_row + s.length - 1) * heads * HD + h * HD + d] = from_f32<T>(L > 0.f ? o / L : 0.f);
}

#define DECODE_INSTANCE(suffix, T, HD) \
extern "C" __global__ void __launch_bounds__(THREADS) attention_decode_##suffix##_hd##HD( \
    const T* qkv, const T* kc, const T* vc, const SequenceDesc* desc, const float* slopes, \
    int heads, int max_pos, int max_splits, int target_splits, float score_scale, float* partial) \
{ attention_decode_split<T, HD>(qkv, kc, vc, desc, slopes, heads, max_pos, max_splits, target_splits, score_scale, partial); } \
extern "C" __global__ void __launch_bounds__(THREADS) attention_combine_##suffix##_hd##HD( \
    const float* partial, const SequenceDesc* desc, int heads, int max_splits, int target_splits, T* out) \
{ attention_decode_combine<T, HD>(partial, desc, heads, max_splits, target_splits, out); }

DECODE_INSTANCE(f16, __half, 16)
DECODE_INSTANCE(f16, __half, 32)
DECODE_INSTANCE(f16, __half, 64)
DECODE_INSTANCE(f16, __half, 80)
DECODE_INSTANCE(f16, __half, 128)
DECODE_INSTANCE(bf16, bf16, 16)
DECODE_INSTANCE(bf16, bf16, 32)
DECODE_INSTANCE(bf16, bf16, 64)
DECODE_INSTANCE(bf16, bf16, 80)
DECODE_INSTANCE(bf16, bf16, 128)
