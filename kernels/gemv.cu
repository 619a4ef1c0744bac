// Matrix-vector products for decode (a few rows), reading each weight once with 16-byte
// loads, with the bias and the residual add fused into the epilogue.
//
// Math:    y[i, o] = (accumulate ? y[i, o] : 0) + (bias ? bias[o] : 0) + sum_c x[i, c] * w[o, c]
//          for rows i < m (1 <= m <= GEMV_MAX_ROWS), outputs o < n, inputs c < k; products and
//          sums in fp32, one rounding to the output type at the end.
// Layouts: w [n, ldw] row-major in T (rows are outputs), ldw % 8 == 0, 16-byte aligned, and the
//          columns k..round_up(k, 8) of every row finite (the loader zeroes them);
//          x [m, ldx] in T (any alignment); bias [n] fp32 or null; y [m, ldy] in TOut.
//          Names: gemv_<T>_<TOut> with TOut = f32 or T.
// Launch:  grid (ceil(n / 8)), block 256 (8 warps, one output row each: lanes stride over the
//          row in 16-byte words, four loads in flight per lane); dynamic shared memory
//          m * round_up(k, 8) * sizeof(T) bytes (x staged once per block, zero-padded).
#include "common.cuh"

#define GEMV_MAX_ROWS 4
#define GEMV_UNROLL 4

__device__ __forceinline__ float2 pair_f32(unsigned v, __half) { return __half22float2(*reinterpret_cast<const __half2*>(&v)); }
__device__ __forceinline__ float2 pair_f32(unsigned v, bf16) { return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&v)); }

template <typename T>
__device__ __forceinline__ float dot8(uint4 w, uint4 x) {
    const float2 w0 = pair_f32(w.x, T()), w1 = pair_f32(w.y, T()), w2 = pair_f32(w.z, T()), w3 = pair_f32(w.w, T());
    const float2 x0 = pair_f32(x.x, T()), x1 = pair_f32(x.y, T()), x2 = pair_f32(x.z, T()), x3 = pair_f32(x.w, T());
    float s = w0.x * x0.x;
    s = fmaf(w0.y, x0.y, s); s = fmaf(w1.x, x1.x, s); s = fmaf(w1.y, x1.y, s);
    s = fmaf(w2.x, x2.x, s); s = fmaf(w2.y, x2.y, s); s = fmaf(w3.x, x3.x, s); s = fmaf(w3.y, x3.y, s);
    return s;
}

template <typename T, typename TOut>
__device__ __forceinline__ void gemv(const T* __restrict__ w, int ldw, int n, int k, const T* __restrict__ x, int ldx, int m,
                                     const float* __restrict__ bias, int accumulate, TOut* __restrict__ y, int ldy) {
    extern __shared__ __align__(16) unsigned char gemv_smem[];
    T* xs = reinterpret_cast<T*>(gemv_smem);
    const int kp = (k + 7) & ~7, k8 = kp >> 3;
    for (int i = threadIdx.x; i < m * kp; i += blockDim.x) {
        const int r = i / kp, c = i - r * kp;
        xs[i] = c < k ? x[(size_t)r * ldx + c] : from_f32<T>(0.f);
    }
    __syncthreads();

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int o = blockIdx.x * (blockDim.x >> 5) + warp;
    if (o >= n) return;
    const uint4* wr = reinterpret_cast<const uint4*>(w + (size_t)o * ldw);
    const uint4* xv = reinterpret_cast<const uint4*>(xs);
    float acc[GEMV_MAX_ROWS];
#pragma unroll
    for (int i = 0; i < GEMV_MAX_ROWS; ++i) acc[i] = 0.f;
    for (int c0 = lane; c0 < k8; c0 += 32 * GEMV_UNROLL) {
        uint4 wv[GEMV_UNROLL];
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; ++u) {
            const int c = c0 + 32 * u;
            wv[u] = c < k8 ? __ldcs(wr + c) : make_uint4(0, 0, 0, 0);  // weights are read once per step: stream them past L2
        }
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; ++u) {
            const int c = c0 + 32 * u;
            if (c < k8) {
#pragma unroll
                for (int i = 0; i < GEMV_MAX_ROWS; ++i)
                    if (i < m) acc[i] += dot8<T>(wv[u], xv[i * k8 + c]);
            }
        }
    }
#pragma unroll
    for (int i = 0; i < GEMV_MAX_ROWS; ++i) acc[i] = warp_sum(acc[i]);
    if (lane == 0) {
        const float b = bias ? bias[o] : 0.f;
#pragma unroll
        for (int i = 0; i < GEMV_MAX_ROWS; ++i) {
            if (i < m) {
                TOut* p = y + (size_t)i * ldy + o;
                float v = acc[i] + b;
                if (accumulate) v += to_f32(*p);
                *p = from_f32<TOut>(v);
            }
        }
    }
}

#define GEMV_INSTANCE(tn, T, on, TOut) \
extern "C" __global__ void __launch_bounds__(256) gemv_##tn##_##on(const T* w, int ldw, int n, int k, const T* x, int ldx, int m, \
    const float* bias, int accumulate, TOut* y, int ldy) \
{ gemv<T, TOut>(w, ldw, n, k, x, ldx, m, bias, accumulate, y, ldy); }

GEMV_INSTANCE(f16, __half, f32, float)
GEMV_INSTANCE(f16, __half, f16, __half)
GEMV_INSTANCE(bf16, bf16, f32, float)
GEMV_INSTANCE(bf16, bf16, bf16, bf16)
