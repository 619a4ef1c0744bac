// Token selection on the device, so only the chosen ids cross PCIe.
//
// argmax:  token[r] = smallest i with logits[r][i] == max_i logits[r][i]   (NaN never wins)
// sample:  per row r with params (temperature T, top_k K, top_p P, uniform u in [0, 1)):
//            T <= 0            -> argmax
//            x_i = logits[r][i] / T, M = max x
//            top-k (0 < K < V)  : keep x_i >= tau_k, tau_k = the K-th largest x (found by
//                                  bisection on the value: 40 counting passes)
//            top-p (0 < P < 1)  : among the kept, keep x_i >= tau_p, the largest threshold whose
//                                  kept mass sum exp(x_i - M) is >= P * (mass kept by top-k)
//            token = first i (vocabulary order) whose running kept mass reaches u * (kept mass)
//          Ties at a threshold are all kept. Everything in fp32.
// Layouts: logits [R, V] fp32 row-major; params SampleParams[R] (16 bytes, mirrors
//          GptJx.Cuda.SampleParams); token [R] int32.
// Launch:  grid (R), block 1024 (both kernels).
#include "common.cuh"

struct SampleParams {
    float temperature;
    int top_k;
    float top_p;
    float uniform;
};

#define SAMPLE_THREADS 1024

__device__ __forceinline__ void argmax_pair(float& v, int& i, float ov, int oi) {
    if (ov > v || (ov == v && oi < i)) { v = ov; i = oi; }
}

__device__ int block_argmax(const float* __restrict__ x, int n, float inv_t) {
    __shared__ float sv[32];
    __shared__ int si[32];
    float best = -INFINITY;
    int idx = 0x7fffffff;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = x[i] * inv_t;
        if (v > best) { best = v; idx = i; }  // increasing i: first occurrence kept
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, best, o);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        argmax_pair(best, idx, ov, oi);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) { sv[warp] = best; si[warp] = idx; }
    __syncthreads();
    if (warp == 0) {
        best = lane < (int)(blockDim.x >> 5) ? sv[lane] : -INFINITY;
        idx = lane < (int)(blockDim.x >> 5) ? si[lane] : 0x7fffffff;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, best, o);
            const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
            argmax_pair(best, idx, ov, oi);
        }
        if (lane == 0) si[0] = idx == 0x7fffffff ? 0 : idx;
    }
    __syncthreads();
    return si[0];
}

extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS) argmax_f32(const float* logits, int vocab, int* token) {
    const int t = block_argmax(logits + (size_t)blockIdx.x * vocab, vocab, 1.f);
    if (threadIdx.x == 0) token[blockIdx.x] = t;
}

// Number of x_i >= t and their mass sum exp(x_i - M).
__device__ __forceinline__ void kept(const float* x, int n, float inv_t, float lo_bound, float t, float M,
                                     float* scratch, float& count, float& mass) {
    float c = 0.f, s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = x[i] * inv_t;
        if (v >= t && v >= lo_bound) { c += 1.f; s += __expf(v - M); }
    }
    count = block_sum(c, scratch);
    mass = block_sum(s, scratch);
}

extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS) sample_f32(const float* logits, int vocab, const SampleParams* params, int* token) {
    __shared__ float scratch[33];
    __shared__ float scan[SAMPLE_THREADS];
    __shared__ int chosen;
    const SampleParams p = params[blockIdx.x];
    const float* x = logits + (size_t)blockIdx.x * vocab;
    const int greedy = block_argmax(x, vocab, 1.f);
    if (!(p.temperature > 0.f)) {
        if (threadIdx.x == 0) token[blockIdx.x] = greedy;
        return;
    }
    const float inv_t = 1.f / p.temperature;
    const float M = x[greedy] * inv_t;
    float lmin = INFINITY;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) lmin = fminf(lmin, x[i] * inv_t);
    lmin = -block_max(-lmin, scratch);

    float count, mass;
    float tau = lmin;
    if (p.top_k > 0 && p.top_k < vocab) {
        float lo = lmin, hi = M;  // count(>= lo) >= K; find the largest such threshold
        for (int it = 0; it < 40 && lo < hi; ++it) {
            const float mid = 0.5f * (lo + hi);
            if (mid <= lo || mid >= hi) break;
            kept(x, vocab, inv_t, -INFINITY, mid, M, scratch, count, mass);
            if (count >= (float)p.top_k) lo = mid; else hi = mid;
        }
        kept(x, vocab, inv_t, -INFINITY, hi, M, scratch, count, mass);
        tau = count >= (float)p.top_k ? hi : lo;
    }
    float total;
    kept(x, vocab, inv_t, -INFINITY, tau, M, scratch, count, total);
    if (p.top_p > 0.f && p.top_p < 1.f) {
        const float goal = p.top_p * total;
        float lo = tau, hi = M;  // mass(>= lo) >= goal
        kept(x, vocab, inv_t, -INFINITY, hi, M, scratch, count, mass);
        if (mass >= goal) lo = hi;
        for (int it = 0; it < 40 && lo < hi; ++it) {
            const float mid = 0.5f * (lo + hi);
            if (mid <= lo || mid >= hi) break;
            kept(x, vocab, inv_t, -INFINITY, mid, M, scratch, count, mass);
            if (mass >= goal) lo = mid; else hi = mid;
        }
        tau = lo;
        kept(x, vocab, inv_t, -INFINITY, tau, M, scratch, count, total);
    }

    // Inverse CDF over the kept tokens in vocabulary order: contiguous chunk per thread.
    const int per = (vocab + blockDim.x - 1) / blockDim.x;
    const int b = threadIdx.x * per, e = min(b + per, vocab);
    float s = 0.f;
    for (int i = b; i < e; ++i) { const float v = x[i] * inv_t; if (v >= tau) s += __expf(v - M); }
    scan[threadIdx.x] = s;
    if (threadIdx.x == 0) chosen = greedy;
    __syncthreads();
    for (int o = 1; o < (int)blockDim.x; o <<= 1) {  // inclusive Hillis-Steele scan
        const float add = threadIdx.x >= (unsigned)o ? scan[threadIdx.x - o] : 0.f;
        __syncthreads();
        scan[threadIdx.x] += add;
        __syncthreads();
    }
    const float target = p.uniform * scan[blockDim.x - 1];
    const float incl = scan[threadIdx.x], excl = incl - s;
    if (s > 0.f && target >= excl && target < incl) {
        float run = excl;
        int pick = -1;
        for (int i = b; i < e; ++i) {
            const float v = x[i] * inv_t;
            if (v < tau) continue;
            pick = i;
            run += __expf(v - M);
            if (run > target) break;
        }
        if (pick >= 0) chosen = pick;
    }
    __syncthreads();
    if (threadIdx.x == 0) token[blockIdx.x] = chosen;
}
