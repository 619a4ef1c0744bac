// Token selection on the device, so only the chosen ids cross PCIe. Same semantics as the
// host Sampler (GptJx.Generation.Sampler), so a seed gives the same tokens on either side.
//
// Order:   candidates are ranked by logit, highest first; equal logits by index, lowest first.
//          Every set below is a prefix of that ranking, named by its last element (key, index).
// Rows with a NaN or infinite logit get token -1 from both kernels (the host sampler refuses such
// rows; the engine raises NonFiniteLogitsException for an id outside the vocabulary).
// argmax:  token[r] = smallest i with logits[r][i] == max_i logits[r][i]
// sample:  per row r with params (temperature T, top_k K, top_p P, uniform u in [0, 1)):
//            T <= 0            -> argmax
//            candidates  C = the first min(K, V) of the ranking (all V when K = 0)
//            p_i = exp((x_i - max x) / T) for i in C,  S = sum_C p_i
//            top-p (P < 1): kept = the shortest prefix of C whose mass reaches P * S
//            token = the first kept element (in ranking order) whose running mass exceeds
//                    u * (kept mass); the last kept element if rounding leaves none.
//          Prefixes are found by bisection on the order-preserving 32-bit key of the logit
//          (at most 32 block-wide counting passes each), then, only when several candidates
//          share the boundary logit, by bisection on the index among them (at most 17 more).
//          fp32 throughout (the host sums in fp64: boundaries can differ by rounding only).
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

// The smallest index of the row's largest logit, or -1 when any logit is NaN or infinite.
__device__ int block_argmax(const float* __restrict__ x, int n) {
    __shared__ float sv[32];
    __shared__ int si[32];
    float best = -INFINITY;
    int idx = 0x7fffffff, finite = 1;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = x[i];
        finite &= fabsf(v) <= 3.402823466e38f;  // false for NaN and +-inf
        if (v > best || (idx == 0x7fffffff && v == v)) { best = v; idx = i; }  // increasing i: first occurrence kept
    }
    if (!__syncthreads_and(finite)) return -1;
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
    const int r = si[0];
    __syncthreads();  // si may be reused by a later call
    return r;
}

extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS) argmax_f32(const float* logits, int vocab, int* token) {
    const int t = block_argmax(logits + (size_t)blockIdx.x * vocab, vocab);
    if (threadIdx.x == 0) token[blockIdx.x] = t;
}

// Order-preserving key of a float (larger float, larger key); NaN gets key 0, below -inf.
__device__ __forceinline__ unsigned sort_key(float v) {
    if (v != v) return 0u;
    const unsigned u = __float_as_uint(v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// A prefix of the ranking ends at element (key, index): i belongs when key_i > key, or key_i == key and i <= index.
struct Boundary {
    unsigned key;
    int index;
};

__device__ __forceinline__ bool in_prefix(unsigned k, int i, Boundary b) { return k > b.key || (k == b.key && i <= b.index); }

// Block-wide sums of two values (every thread gets them). `scratch` holds at least 66 floats.
__device__ __forceinline__ float2 block_sum2(float a, float b, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    a = warp_sum(a);
    b = warp_sum(b);
    __syncthreads();
    if (lane == 0) { scratch[warp] = a; scratch[32 + warp] = b; }
    __syncthreads();
    if (warp == 0) {
        float ta = lane < warps ? scratch[lane] : 0.f, tb = lane < warps ? scratch[32 + lane] : 0.f;
        ta = warp_sum(ta);
        tb = warp_sum(tb);
        if (lane == 0) { scratch[64] = ta; scratch[65] = tb; }
    }
    __syncthreads();
    return make_float2(scratch[64], scratch[65]);
}

// Count (x) and mass (y) of the elements of prefix `within` that also belong to prefix `b`.
// Mass is sum exp((x_i - xmax) / T); with_mass = false sums counts only.
__device__ float2 prefix_stats(const float* __restrict__ x, int n, float xmax, float t, Boundary within, Boundary b,
                               bool with_mass, float* scratch) {
    float c = 0.f, s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = x[i];
        const unsigned k = sort_key(v);
        if (in_prefix(k, i, within) && in_prefix(k, i, b)) {
            c += 1.f;
            if (with_mass) s += expf((v - xmax) / t);
        }
    }
    return block_sum2(c, s, scratch);
}

// Lowest and highest index of the elements of `within` whose key is `key` (equal when there is one).
__device__ void tie_range(const float* __restrict__ x, int n, Boundary within, unsigned key, int& first, int& last) {
    __shared__ int lo_s, hi_s;
    if (threadIdx.x == 0) { lo_s = 0x7fffffff; hi_s = -1; }
    __syncthreads();
    int lo = 0x7fffffff, hi = -1;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const unsigned k = sort_key(x[i]);
        if (k == key && in_prefix(k, i, within)) { lo = min(lo, i); hi = max(hi, i); }
    }
    if (lo <= hi) { atomicMin(&lo_s, lo); atomicMax(&hi_s, hi); }
    __syncthreads();
    first = lo_s;
    last = hi_s;
    __syncthreads();
}

// The shortest prefix of `within` whose count (use_mass = false) or mass (true) reaches `goal`
// (strictly exceeds it when `strict`). Returns false when even all of `within` does not.
__device__ bool shortest_prefix(const float* __restrict__ x, int n, float xmax, float t, Boundary within,
                                unsigned key_lo, unsigned key_hi, bool use_mass, float goal, bool strict,
                                float* scratch, Boundary& result) {
    auto reaches = [&](float2 st) { const float v = use_mass ? st.y : st.x; return strict ? v > goal : v >= goal; };
    // 1. The boundary key: the largest key k in [key_lo, key_hi] whose prefix "key >= k" reaches the goal.
    if (!reaches(prefix_stats(x, n, xmax, t, within, Boundary{key_lo, n - 1}, use_mass, scratch))) return false;
    unsigned lo = key_lo, hi = key_hi;  // reaches(lo); find the largest such key
    while (lo < hi) {
        const unsigned mid = lo + (hi - lo + 1) / 2;
        if (reaches(prefix_stats(x, n, xmax, t, within, Boundary{mid, n - 1}, use_mass, scratch))) lo = mid; else hi = mid - 1;
    }
    // 2. Among the elements of `within` with that key, the smallest index that still reaches the goal
    //    (bisection only when several share the key; the whole group reaches it, the part above does not).
    int ilo, ihi;
    tie_range(x, n, within, lo, ilo, ihi);
    while (ilo < ihi) {
        const int mid = ilo + (ihi - ilo) / 2;
        if (reaches(prefix_stats(x, n, xmax, t, within, Boundary{lo, mid}, use_mass, scratch))) ihi = mid; else ilo = mid + 1;
    }
    result = Boundary{lo, ihi};
    return true;
}

// The last element (highest index with the lowest key) of prefix `within`.
__device__ int last_of(const float* __restrict__ x, int n, Boundary within, float* scratch) {
    __shared__ unsigned kmin;
    __shared__ int imax;
    if (threadIdx.x == 0) { kmin = 0xffffffffu; imax = -1; }
    __syncthreads();
    unsigned k_local = 0xffffffffu;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const unsigned k = sort_key(x[i]);
        if (in_prefix(k, i, within)) k_local = min(k_local, k);
    }
    atomicMin(&kmin, k_local);
    __syncthreads();
    int i_local = -1;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (in_prefix(sort_key(x[i]), i, within) && sort_key(x[i]) == kmin) i_local = max(i_local, i);
    atomicMax(&imax, i_local);
    __syncthreads();
    const int r = imax;
    __syncthreads();
    return r;
}

extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS) sample_f32(const float* logits, int vocab, const SampleParams* params, int* token) {
    __shared__ float scratch[66];
    const SampleParams p = params[blockIdx.x];
    const float* x = logits + (size_t)blockIdx.x * vocab;
    const int greedy = block_argmax(x, vocab);
    if (greedy < 0 || !(p.temperature > 0.f)) {
        if (threadIdx.x == 0) token[blockIdx.x] = greedy;
        return;
    }
    const float t = p.temperature, xmax = x[greedy];
    const unsigned kmax = sort_key(xmax);
    const Boundary all{0u, vocab - 1};

    // Candidates: the first K of the ranking.
    Boundary cand = all;
    if (p.top_k > 0 && p.top_k < vocab)
        shortest_prefix(x, vocab, xmax, t, all, 0u, kmax, false, (float)p.top_k, false, scratch, cand);

    // Nucleus: the shortest prefix of the candidates whose mass reaches top_p of theirs.
    Boundary kept = cand;
    float2 st = prefix_stats(x, vocab, xmax, t, all, cand, true, scratch);
    if (p.top_p < 1.f) {
        if (shortest_prefix(x, vocab, xmax, t, cand, cand.key, kmax, true, p.top_p * st.y, false, scratch, kept))
            st = prefix_stats(x, vocab, xmax, t, all, kept, true, scratch);
        else
            kept = cand;
    }

    // Inverse CDF in ranking order: the first kept element whose running mass exceeds u * mass.
    Boundary pick;
    int chosen;
    if (shortest_prefix(x, vocab, xmax, t, kept, kept.key, kmax, true, p.uniform * st.y, true, scratch, pick))
        chosen = pick.index;
    else
        chosen = last_of(x, vocab, kept, scratch);
    if (threadIdx.x == 0) token[blockIdx.x] = chosen >= 0 ? chosen : greedy;
}
