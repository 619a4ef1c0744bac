// Fused causal ALiBi attention for prefill (and any batch with multi-token
// sequences), flash-attention style on tensor cores (WMMA 16x16x16, fp16/bf16
// inputs, fp32 accumulators). No [T, T] score matrix is ever stored.
//
// Math:    for sequence s, head h, new token i (absolute position p = start + i):
//            score[j] = (q_p . k_j) * score_scale - slopes[h] * alibi_scale * (p - j),  j in 0..p
//            out[first_row + i][h*HD + d] = sum_j softmax(score)[j] * v_j[d]
//          Online softmax in fp32 (running max m, running sum l, rescaled output),
//          probabilities rounded to the input type for the P.V product.
// Layouts: qkv [rows, 3D] row-major, q in columns [0, D) (head h at h*HD);
//          kc, vc: this layer's cache [slots][heads][max_pos][HD] (keys already appended
//          by kv_append); desc: SequenceDesc[count]; slopes [heads] fp32;
//          out [rows, D] row-major in the input type.
// Launch:  grid (ceil(max length / 64), heads, count), block 128 (4 warps);
//          each block owns 64 queries of one (sequence, head); warp w owns queries
//          16w..16w+15 and walks key tiles of 64 up to its last query's position.
//          Dynamic shared memory = attention_prefill_smem(HD) bytes (> 48 KiB, so the
//          host raises CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES):
//            Q, K, V tiles [64][HD+8] (input type), S [4][16][68] fp32,
//            P [4][16][72] (input type), O [4][16][HD+4] fp32.
//          HD must be a multiple of 16; instances for HD = 16, 32, 64, 80, 128.
#include "common.cuh"
#include <mma.h>
using namespace nvcuda;

#define BQ 64
#define BK 64
#define LDS (BK + 4)
#define LDP (BK + 8)

template <typename T, int HD>
__device__ __forceinline__ void attention_prefill(const T* __restrict__ qkv, const T* __restrict__ kc, const T* __restrict__ vc,
                                                  const SequenceDesc* __restrict__ desc, const float* __restrict__ slopes,
                                                  int heads, int max_pos, float score_scale, T* __restrict__ out) {
    constexpr int LDT = HD + 8, LDO = HD + 4, V8 = HD / 8;
    extern __shared__ __align__(128) unsigned char smem[];
    T* Qs = reinterpret_cast<T*>(smem);
    T* Ks = Qs + BQ * LDT;
    T* Vs = Ks + BK * LDT;
    float* S = reinterpret_cast<float*>(Vs + BK * LDT);
    T* P = reinterpret_cast<T*>(S + 4 * 16 * LDS);
    float* O = reinterpret_cast<float*>(P + 4 * 16 * LDP);

    const SequenceDesc s = desc[blockIdx.z];
    const int q0 = blockIdx.x * BQ;
    if (q0 >= s.length) return;
    const int h = blockIdx.y;
    const int width = heads * HD;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const float slope = slopes[h] * s.alibi_scale;
    const int nq = min(BQ, s.length - q0);
    const int kv_end = s.start + q0 + nq;  // keys [0, kv_end) are visible to some query of this block

    // Q tile (zero rows past the sequence end).
    for (int idx = tid; idx < BQ * V8; idx += blockDim.x) {
        const int r = idx / V8, c = idx - r * V8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (r < nq) v = *reinterpret_cast<const uint4*>(qkv + (size_t)(s.first_row + q0 + r) * 3 * width + h * HD + c * 8);
        *reinterpret_cast<uint4*>(Qs + r * LDT + c * 8) = v;
    }
    float* Ow = O + warp * 16 * LDO;
    float* Sw = S + warp * 16 * LDS;
    T* Pw = P + warp * 16 * LDP;
    for (int idx = lane; idx < 16 * HD; idx += 32) Ow[(idx / HD) * LDO + idx % HD] = 0.f;

    // Softmax bookkeeping: lane pair (2r, 2r+1) owns row r of the warp's 16 rows, half the columns each.
    const int r = lane >> 1, half = lane & 1;
    const int qi = q0 + warp * 16 + r;              // query index within the sequence
    const bool row_valid = qi < s.length;
    const int qpos = s.start + qi;                   // absolute position
    const int warp_last = s.start + min(q0 + warp * 16 + 15, s.length - 1);  // last position of this warp
    const bool warp_active = q0 + warp * 16 < s.length;
    float m = -INFINITY, l = 0.f;
    const float LOG2E = 1.4426950408889634f;
    const size_t head_base = ((size_t)s.slot * heads + h) * max_pos;

    for (int kt = 0; kt < kv_end; kt += BK) {
        __syncthreads();  // everyone is done with the previous K/V tile (and Q is written)
        for (int idx = tid; idx < BK * V8; idx += blockDim.x) {
            const int rr = idx / V8, c = idx - rr * V8;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
            if (kt + rr < kv_end) {
                const size_t off = (head_base + kt + rr) * HD + c * 8;
                kv = *reinterpret_cast<const uint4*>(kc + off);
                vv = *reinterpret_cast<const uint4*>(vc + off);
            }
            *reinterpret_cast<uint4*>(Ks + rr * LDT + c * 8) = kv;
            *reinterpret_cast<uint4*>(Vs + rr * LDT + c * 8) = vv;
        }
        __syncthreads();
        if (!warp_active || kt > warp_last) continue;  // every key of this tile is in this warp's future

        // S = Q K^T for the warp's 16 rows and the tile's 64 keys.
#pragma unroll
        for (int n = 0; n < BK / 16; ++n) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.f);
#pragma unroll
            for (int k = 0; k < HD / 16; ++k) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
                wmma::load_matrix_sync(a, Qs + warp * 16 * LDT + k * 16, LDT);
                wmma::load_matrix_sync(b, Ks + n * 16 * LDT + k * 16, LDT);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(Sw + n * 16, acc, LDS, wmma::mem_row_major);
        }
        __syncwarp();

        // Online softmax over this tile (log2 domain).
        const int c0 = half * 32;
        float tmax = -INFINITY;
        for (int c = 0; c < 32; ++c) {
            const int j = kt + c0 + c;
            float x = -INFINITY;
            if (row_valid && j <= qpos) x = (Sw[r * LDS + c0 + c] * score_scale - slope * (float)(qpos - j)) * LOG2E;
            Sw[r * LDS + c0 + c] = x;
            tmax = fmaxf(tmax, x);
        }
        tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
        const float m_new = fmaxf(m, tmax);
        const float alpha = m_new == -INFINITY ? 1.f : exp2f(m - m_new);
        float psum = 0.f;
        for (int c = 0; c < 32; ++c) {
            const float x = Sw[r * LDS + c0 + c];
            const float p = x == -INFINITY ? 0.f : exp2f(x - m_new);
            psum += p;
            Pw[r * LDP + c0 + c] = from_f32<T>(p);
        }
        psum += __shfl_xor_sync(0xffffffffu, psum, 1);
        l = l * alpha + psum;
        m = m_new;
        for (int d = half * (HD / 2); d < (half + 1) * (HD / 2); ++d) Ow[r * LDO + d] *= alpha;
        __syncwarp();

        // O += P V.
#pragma unroll
        for (int n = 0; n < HD / 16; ++n) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, Ow + n * 16, LDO, wmma::mem_row_major);
#pragma unroll
            for (int k = 0; k < BK / 16; ++k) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
                wmma::load_matrix_sync(a, Pw + k * 16, LDP);
                wmma::load_matrix_sync(b, Vs + k * 16 * LDT + n * 16, LDT);
                wmma::mma_sync(acc, a, b, acc);
            }
            wmma::store_matrix_sync(Ow + n * 16, acc, LDO, wmma::mem_row_major);
        }
        __syncwarp();
    }

    if (!row_valid) return;
    const float inv = l > 0.f ? 1.f / l : 0.f;
    T* dst = out + (size_t)(s.first_row + qi) * width + h * HD;
    for (int d = half * (HD / 2); d < (half + 1) * (HD / 2); ++d) dst[d] = from_f32<T>(Ow[r * LDO + d] * inv);
}

#define PREFILL_INSTANCE(suffix, T, HD) \
extern "C" __global__ void __launch_bounds__(128, 4) attention_prefill_##suffix##_hd##HD( \
    const T* qkv, const T* kc, const T* vc, const SequenceDesc* desc, const float* slopes, \
    int heads, int max_pos, float score_scale, T* out) \
{ attention_prefill<T, HD>(qkv, kc, vc, desc, slopes, heads, max_pos, score_scale, out); }

PREFILL_INSTANCE(f16, __half, 16)
PREFILL_INSTANCE(f16, __half, 32)
PREFILL_INSTANCE(f16, __half, 64)
PREFILL_INSTANCE(f16, __half, 80)
PREFILL_INSTANCE(f16, __half, 128)
PREFILL_INSTANCE(bf16, bf16, 16)
PREFILL_INSTANCE(bf16, bf16, 32)
PREFILL_INSTANCE(bf16, bf16, 64)
PREFILL_INSTANCE(bf16, bf16, 80)
PREFILL_INSTANCE(bf16, bf16, 128)
