// Token selection on the device, so only the chosen ids cross PCIe. Same semantics as the
// host Sampler (GptJx.Generation.Sampler), so a seed gives the same tokens on either side.
//
// Math:    candidates are ranked by logit, highest first; equal logits by index, lowest first.
//          Every set below is a prefix of that ranking, named by its last element (key, index).
//          A row with a NaN or infinite logit gets token -1 from both kernels (the host sampler
//          refuses such rows; the engine raises NonFiniteLogitsException for an id outside the vocabulary).
//          argmax: token[r] = smallest i with logits[r][i] == max_i logits[r][i]
//          sample: per row r with params (temperature T, top_k K, top_p P, uniform u in [0, 1)):
//            T <= 0            -> argmax
//            candidates  C = the first min(K, V) of the ranking (all V when K = 0)
//            p_i = exp((x_i - max x) / T) for i in C,  S = sum_C p_i
//            top-p (P < 1): kept = the shortest prefix of C whose mass reaches P * S
//            token = the first kept element (in ranking order) whose running mass exceeds
//                    u * (kept mass); the last kept element if rounding leaves none.
//          Each p_i is held as a 64-bit fixed-point number (p_i * 2^40, truncated), so every sum is
//          exact and the same in any order: results are deterministic, and differ from the host's
//          fp64 sums of fp32 probabilities only where u * mass lies within about 1e-7 of a boundary.
// Method:  each prefix is found by a radix select on the order-preserving 32-bit key of the logit:
//          4 passes of 8-bit digits, each building a 256-bin histogram of counts and masses of the
//          elements that share the digits chosen so far, then one block-wide scan in index order
//          among the elements whose key equals the boundary's. Sampling reads the row at most
//          about 17 times (top-k 5, mass 1, top-p 5 + 1, inverse CDF 5).
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
#define MASS_SCALE 1099511627776.0f  // 2^40

typedef unsigned long long u64;

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

// Order-preserving key of a finite float (larger float, larger key; -0 and +0 share one key, as they compare equal).
__device__ __forceinline__ unsigned sort_key(float v) {
    const unsigned u = __float_as_uint(v + 0.f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// A prefix of the ranking ends at element (key, index): i belongs when key_i > key, or key_i == key and i <= index.
struct Boundary {
    unsigned key;
    int index;
};

__device__ __forceinline__ bool in_prefix(unsigned k, int i, Boundary b) { return k > b.key || (k == b.key && i <= b.index); }

// The row being sampled: logits, the max logit and the temperature (for the masses).
struct Row {
    const float* x;
    int n;
    float xmax, t;
    __device__ __forceinline__ u64 mass(float v) const { return (u64)(expf((v - xmax) / t) * MASS_SCALE); }
};

// Block-wide sum of 64-bit integers (every thread gets it).
__device__ u64 block_sum_u64(u64 v) {
    __shared__ u64 partial[33];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        u64 s = lane < warps ? partial[lane] : 0;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) partial[32] = s;
    }
    __syncthreads();
    return partial[32];
}

// Exclusive prefix sum over the block's threads in thread order (every thread gets its own and the total).
__device__ u64 block_exclusive_scan_u64(u64 v, u64& total) {
    __shared__ u64 sums[33];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    u64 inclusive = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const u64 n = __shfl_up_sync(0xffffffffu, inclusive, o);
        if (lane >= o) inclusive += n;
    }
    __syncthreads();
    if (lane == 31) sums[warp] = inclusive;
    __syncthreads();
    if (warp == 0) {
        u64 s = lane < warps ? sums[lane] : 0, inc = s;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const u64 n = __shfl_up_sync(0xffffffffu, inc, o);
            if (lane >= o) inc += n;
        }
        if (lane < warps) sums[lane] = inc - s;  // exclusive, per warp
        if (lane == 31) sums[32] = inc;
    }
    __syncthreads();
    const u64 r = sums[warp] + inclusive - v;
    total = sums[32];
    __syncthreads();
    return r;
}

// Of the elements of prefix `within`, the shortest prefix (of the ranking) whose count
// (by_mass false) or mass reaches `goal` (exceeds it when `strict`). False when all of `within`
// does not. See "Method" above.
__device__ bool select_prefix(const Row& row, Boundary within, bool by_mass, u64 goal, bool strict, Boundary& result) {
    __shared__ unsigned counts[256];
    __shared__ u64 masses[256];
    __shared__ unsigned chosen_prefix;
    __shared__ u64 chosen_goal;
    __shared__ int found;
    auto reaches = [&](u64 v, u64 g) { return strict ? v > g : v >= g; };
    if (!strict && goal == 0) goal = 1;  // a prefix holds at least one element, as on the host
    unsigned prefix = 0;
    for (int pass = 0; pass < 4; ++pass) {
        const int shift = 24 - 8 * pass;
        for (int b = threadIdx.x; b < 256; b += blockDim.x) { counts[b] = 0; masses[b] = 0; }
        __syncthreads();
        for (int i = threadIdx.x; i < row.n; i += blockDim.x) {
            const float v = row.x[i];
            const unsigned k = sort_key(v);
            if (!in_prefix(k, i, within) || (pass > 0 && (k >> (shift + 8)) != prefix)) continue;
            const unsigned digit = (k >> shift) & 255u;
            atomicAdd(&counts[digit], 1u);
            if (by_mass) atomicAdd(&masses[digit], row.mass(v));
        }
        __syncthreads();
        // Warp 0 walks the digits from the highest: lane l owns digits 255 - 8l .. 248 - 8l.
        if (threadIdx.x < 32) {
            const int lane = threadIdx.x;
            u64 own = 0;
            for (int j = 0; j < 8; ++j) {
                const int d = 255 - 8 * lane - j;
                own += by_mass ? masses[d] : (u64)counts[d];
            }
            u64 before = own;  // inclusive prefix over lanes, then made exclusive
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const u64 n = __shfl_up_sync(0xffffffffu, before, o);
                if (lane >= o) before += n;
            }
            before -= own;
            const unsigned crossing = __ballot_sync(0xffffffffu, !reaches(before, goal) && reaches(before + own, goal));
            if (lane == 0) found = crossing != 0;
            if (crossing && lane == __ffs(crossing) - 1) {
                u64 acc = before;
                for (int j = 0; j < 8; ++j) {
                    const int d = 255 - 8 * lane - j;
                    const u64 value = by_mass ? masses[d] : (u64)counts[d];
                    if (reaches(acc + value, goal)) {
                        chosen_prefix = (prefix << 8) | (unsigned)d;
                        chosen_goal = goal - acc;
                        break;
                    }
                    acc += value;
                }
            }
        }
        __syncthreads();
        if (!found) return false;
        prefix = chosen_prefix;
        goal = chosen_goal;
        __syncthreads();  // chosen_* and found are rewritten by the next pass
    }
    // Among the elements of `within` with key `prefix`, in index order: the first whose running
    // count or mass reaches what is left of the goal. Each thread owns a contiguous range of indices.
    const int per = (row.n + blockDim.x - 1) / blockDim.x;
    const int begin = min(row.n, (int)threadIdx.x * per), end = min(row.n, begin + per);
    u64 own = 0;
    for (int i = begin; i < end; ++i) {
        const unsigned k = sort_key(row.x[i]);
        if (k == prefix && in_prefix(k, i, within)) own += by_mass ? row.mass(row.x[i]) : 1;
    }
    u64 total;
    u64 acc = block_exclusive_scan_u64(own, total);
    __shared__ int index;
    if (threadIdx.x == 0) index = -1;
    __syncthreads();
    if (!reaches(acc, goal) && reaches(acc + own, goal)) {
        for (int i = begin; i < end; ++i) {
            const unsigned k = sort_key(row.x[i]);
            if (k != prefix || !in_prefix(k, i, within)) continue;
            acc += by_mass ? row.mass(row.x[i]) : 1;
            if (reaches(acc, goal)) { index = i; break; }
        }
    }
    __syncthreads();
    result = Boundary{prefix, index};
    const bool ok = index >= 0;
    __syncthreads();
    return ok;
}

// Total mass of the elements of prefix `within`.
__device__ u64 mass_of(const Row& row, Boundary within) {
    u64 s = 0;
    for (int i = threadIdx.x; i < row.n; i += blockDim.x) {
        const float v = row.x[i];
        if (in_prefix(sort_key(v), i, within)) s += row.mass(v);
    }
    return block_sum_u64(s);
}

// The last element of prefix `within` (the highest index among its lowest key).
__device__ int last_of(const Row& row, Boundary within) {
    __shared__ unsigned kmin;
    __shared__ int imax;
    if (threadIdx.x == 0) { kmin = 0xffffffffu; imax = -1; }
    __syncthreads();
    unsigned k_local = 0xffffffffu;
    for (int i = threadIdx.x; i < row.n; i += blockDim.x) {
        const unsigned k = sort_key(row.x[i]);
        if (in_prefix(k, i, within)) k_local = min(k_local, k);
    }
    atomicMin(&kmin, k_local);
    __syncthreads();
    int i_local = -1;
    for (int i = threadIdx.x; i < row.n; i += blockDim.x) {
        const unsigned k = sort_key(row.x[i]);
        if (k == kmin && in_prefix(k, i, within)) i_local = max(i_local, i);
    }
    atomicMax(&imax, i_local);
    __syncthreads();
    const int r = imax;
    __syncthreads();
    return r;
}

extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS, 1) sample_f32(const float* logits, int vocab, const SampleParams* params, int* token) {
    const SampleParams p = params[blockIdx.x];
    const float* x = logits + (size_t)blockIdx.x * vocab;
    const int greedy = block_argmax(x, vocab);
    if (greedy < 0 || !(p.temperature > 0.f)) {
        if (threadIdx.x == 0) token[blockIdx.x] = greedy;
        return;
    }
    const Row row{x, vocab, x[greedy], p.temperature};
    const Boundary all{0u, vocab - 1};

    // Candidates: the first K of the ranking.
    Boundary cand = all;
    if (p.top_k > 0 && p.top_k < vocab) select_prefix(row, all, false, (u64)p.top_k, false, cand);

    // Nucleus: the shortest prefix of the candidates whose mass reaches top_p of theirs.
    Boundary kept = cand;
    u64 mass = mass_of(row, cand);
    if (p.top_p < 1.f) {
        const u64 goal = (u64)((double)p.top_p * (double)mass);
        if (select_prefix(row, cand, true, goal, false, kept)) mass = mass_of(row, kept);
        else kept = cand;
    }

    // Inverse CDF in ranking order: the first kept element whose running mass exceeds u * mass.
    Boundary pick;
    const u64 target = (u64)((double)p.uniform * (double)mass);
    const int chosen = select_prefix(row, kept, true, target, true, pick) ? pick.index : last_of(row, kept);
    if (threadIdx.x == 0) token[blockIdx.x] = chosen >= 0 ? chosen : greedy;
}
