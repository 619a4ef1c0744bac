// CUDA C++ device code on the host: the keywords, built-in variables, vector types, warp
// operations, atomics and intrinsics that kernels/*.cu use, so the same sources compile with g++
// for the emulated device (force-included before every kernel file; the shadow headers in
// ../include stand in for cuda_fp16.h, cuda_bf16.h and mma.h).
//
// Execution model: the emulated driver runs each thread of a block as a fiber, a block at a time
// on each of its host threads. A thread runs until it reaches a point where threads meet
// (__syncthreads, a warp operation), where it hands control on; the driver resumes the block once
// every thread involved has arrived. So warp shuffles, votes and wmma see the values of all their
// lanes, barriers order shared-memory traffic as on the device, and nothing else is ordered.
// `__shared__` variables are thread_local of the host thread, which is exactly one block's
// storage at a time; the driver fills them with NaN bytes before each block.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <type_traits>

#include "emu_abi.h"

#define GPTJX_CUDA_EMULATOR 1

// ---- keywords -------------------------------------------------------------------
#ifdef GPTJX_EMU_LIST_KERNELS
#define __global__ __gptjx_emu_global__   // lets the build find kernel names in preprocessed sources
#else
#define __global__ __attribute__((visibility("default")))
#endif
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __shared__ thread_local
#define __constant__
#define __managed__
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__

namespace gptjx_emu {
extern const gptjx_emu_runtime* g_runtime;  // installed by the driver when it loads the kernel library
// The header at the start of the running thread's stack region (see emu_abi.h).
inline const gptjx_emu_lane_header& lane_header() {
    const uintptr_t sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
    return *reinterpret_cast<const gptjx_emu_lane_header*>(sp & ~uintptr_t(GPTJX_EMU_STACK_REGION_BYTES - 1));
}
inline const gptjx_emu_thread& current_thread() { return *lane_header().thread; }
inline const gptjx_emu_block& current_block() { return *lane_header().block; }
[[noreturn]] inline void fail(const char* message, const char* file, int line) {
    g_runtime->fail(message, file, line);
    __builtin_unreachable();
}
}  // namespace gptjx_emu

// ---- built-in variables -----------------------------------------------------------
typedef gptjx_emu_dim uint3;
typedef gptjx_emu_dim dim3;
#define threadIdx (::gptjx_emu::current_thread().thread_idx)
#define blockIdx (::gptjx_emu::current_block().block_idx)
#define blockDim (::gptjx_emu::current_block().block_dim)
#define gridDim (::gptjx_emu::current_block().grid_dim)
constexpr int warpSize = 32;

// ---- vector types (CUDA's sizes and alignments) -------------------------------------
#define GPTJX_EMU_VEC2(name, T, A) \
    struct __attribute__((aligned(A))) name { T x, y; }; \
    inline name make_##name(T x, T y) { return name{x, y}; }
#define GPTJX_EMU_VEC3(name, T) \
    struct name { T x, y, z; }; \
    inline name make_##name(T x, T y, T z) { return name{x, y, z}; }
#define GPTJX_EMU_VEC4(name, T, A) \
    struct __attribute__((aligned(A))) name { T x, y, z, w; }; \
    inline name make_##name(T x, T y, T z, T w) { return name{x, y, z, w}; }
GPTJX_EMU_VEC2(char2, signed char, 2)
GPTJX_EMU_VEC4(char4, signed char, 4)
GPTJX_EMU_VEC2(uchar2, unsigned char, 2)
GPTJX_EMU_VEC4(uchar4, unsigned char, 4)
GPTJX_EMU_VEC2(short2, short, 4)
GPTJX_EMU_VEC4(short4, short, 8)
GPTJX_EMU_VEC2(ushort2, unsigned short, 4)
GPTJX_EMU_VEC4(ushort4, unsigned short, 8)
GPTJX_EMU_VEC2(int2, int, 8)
GPTJX_EMU_VEC3(int3, int)
GPTJX_EMU_VEC4(int4, int, 16)
GPTJX_EMU_VEC2(uint2, unsigned, 8)
GPTJX_EMU_VEC4(uint4, unsigned, 16)
GPTJX_EMU_VEC2(float2, float, 8)
GPTJX_EMU_VEC3(float3, float)
GPTJX_EMU_VEC4(float4, float, 16)
GPTJX_EMU_VEC2(longlong2, long long, 16)
GPTJX_EMU_VEC2(ulonglong2, unsigned long long, 16)
GPTJX_EMU_VEC2(double2, double, 16)
inline dim3 make_dim3(unsigned x, unsigned y = 1, unsigned z = 1) { return dim3{x, y, z}; }
inline gptjx_emu_dim make_uint3(unsigned x, unsigned y, unsigned z) { return gptjx_emu_dim{x, y, z}; }

#include "emu_half.h"

inline float2 __half22float2(__half2 h) { return make_float2((float)h.x, (float)h.y); }
inline __half2 __float22half2_rn(float2 f) { return __half2(__half(f.x), __half(f.y)); }
inline float2 __bfloat1622float2(__nv_bfloat162 h) { return make_float2((float)h.x, (float)h.y); }
inline __nv_bfloat162 __float22bfloat162_rn(float2 f) { return __nv_bfloat162(__nv_bfloat16(f.x), __nv_bfloat16(f.y)); }

// ---- synchronization ----------------------------------------------------------------
inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    gptjx_emu::g_runtime->barrier(GPTJX_EMU_BARRIER_PLAIN, 0, file, line);
}
inline int __syncthreads_count(int p, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    return gptjx_emu::g_runtime->barrier(GPTJX_EMU_BARRIER_COUNT, p != 0, file, line);
}
inline int __syncthreads_and(int p, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    return gptjx_emu::g_runtime->barrier(GPTJX_EMU_BARRIER_AND, p != 0, file, line);
}
inline int __syncthreads_or(int p, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    return gptjx_emu::g_runtime->barrier(GPTJX_EMU_BARRIER_OR, p != 0, file, line);
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
[[noreturn]] inline void __trap(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    gptjx_emu::fail("__trap()", file, line);
}

// ---- warp operations ------------------------------------------------------------------
namespace gptjx_emu {

inline void check_member(unsigned mask, const char* what, const char* file, int line) {
    if (!((mask >> current_thread().lane) & 1u)) {
        static thread_local char message[160];
        snprintf(message, sizeof message, "%s with mask 0x%08x called by lane %u, which the mask leaves out", what, mask,
                 current_thread().lane);
        fail(message, file, line);
    }
}

struct ShuffleArgs {
    uint64_t value;
    int source;  // lane to read, or -1 to keep the own value (outside the segment)
    uint64_t result;
};

inline const char* resolve_shuffle(void* const* lanes, unsigned mask) {
    static thread_local char message[128];
    for (int l = 0; l < 32; ++l) {
        if (!((mask >> l) & 1u)) continue;
        ShuffleArgs* a = static_cast<ShuffleArgs*>(lanes[l]);
        if (a->source < 0) { a->result = a->value; continue; }
        if (!((mask >> a->source) & 1u)) {
            snprintf(message, sizeof message, "lane %d reads lane %d, which is not in the mask 0x%08x", l, a->source, mask);
            return message;
        }
        a->result = static_cast<ShuffleArgs*>(lanes[a->source])->value;
    }
    return nullptr;
}

enum ShuffleKind { ShflIdx, ShflUp, ShflDown, ShflXor };

template <typename T>
inline T shuffle(ShuffleKind kind, const char* what, unsigned mask, T value, int arg, int width, const char* file, int line) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffled values are at most 8 bytes");
    check_member(mask, what, file, line);
    if (width < 1 || width > 32 || (width & (width - 1))) fail("shuffle width must be a power of two up to 32", file, line);
    const int lane = (int)current_thread().lane, base = lane & ~(width - 1), rel = lane - base;
    int source;
    switch (kind) {
        case ShflIdx: source = base + (arg & (width - 1)); break;
        case ShflUp: source = rel - arg >= 0 ? lane - arg : -1; break;
        case ShflDown: source = rel + arg < width ? lane + arg : -1; break;
        default: source = ((rel ^ arg) < width) ? base + (rel ^ arg) : -1; break;
    }
    ShuffleArgs args{};
    memcpy(&args.value, &value, sizeof(T));
    args.source = source;
    g_runtime->warp_collective(what, mask, &args, resolve_shuffle, file, line);
    T result;
    memcpy(&result, &args.result, sizeof(T));
    return result;
}

struct VoteArgs {
    int predicate;
    unsigned result;
};

inline const char* resolve_ballot(void* const* lanes, unsigned mask) {
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l)
        if (((mask >> l) & 1u) && static_cast<VoteArgs*>(lanes[l])->predicate) ballot |= 1u << l;
    for (int l = 0; l < 32; ++l)
        if ((mask >> l) & 1u) static_cast<VoteArgs*>(lanes[l])->result = ballot;
    return nullptr;
}

inline unsigned ballot(const char* what, unsigned mask, int predicate, const char* file, int line) {
    check_member(mask, what, file, line);
    VoteArgs args{predicate != 0, 0};
    g_runtime->warp_collective(what, mask, &args, resolve_ballot, file, line);
    return args.result;
}

inline const char* resolve_nothing(void* const*, unsigned) { return nullptr; }

}  // namespace gptjx_emu

#define GPTJX_EMU_SITE const char* file = __builtin_FILE(), int line = __builtin_LINE()
template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, GPTJX_EMU_SITE) {
    return gptjx_emu::shuffle(gptjx_emu::ShflIdx, "__shfl_sync", mask, v, src, width, file, line);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, GPTJX_EMU_SITE) {
    return gptjx_emu::shuffle(gptjx_emu::ShflUp, "__shfl_up_sync", mask, v, (int)delta, width, file, line);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, GPTJX_EMU_SITE) {
    return gptjx_emu::shuffle(gptjx_emu::ShflDown, "__shfl_down_sync", mask, v, (int)delta, width, file, line);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, GPTJX_EMU_SITE) {
    return gptjx_emu::shuffle(gptjx_emu::ShflXor, "__shfl_xor_sync", mask, v, lane_mask, width, file, line);
}
inline unsigned __ballot_sync(unsigned mask, int p, GPTJX_EMU_SITE) { return gptjx_emu::ballot("__ballot_sync", mask, p, file, line); }
inline int __any_sync(unsigned mask, int p, GPTJX_EMU_SITE) { return gptjx_emu::ballot("__any_sync", mask, p, file, line) != 0; }
inline int __all_sync(unsigned mask, int p, GPTJX_EMU_SITE) {
    return gptjx_emu::ballot("__all_sync", mask, p, file, line) == mask;
}
inline void __syncwarp(unsigned mask = 0xffffffffu, GPTJX_EMU_SITE) {
    gptjx_emu::check_member(mask, "__syncwarp", file, line);
    gptjx_emu::g_runtime->warp_collective("__syncwarp", mask, nullptr, gptjx_emu::resolve_nothing, file, line);
}

// ---- atomics (blocks run on several host threads, so these are real atomic operations) ----------
namespace gptjx_emu {
template <typename T, typename F>
inline T atomic_update(T* p, F f) {
    T old = __atomic_load_n(reinterpret_cast<T*>(p), __ATOMIC_RELAXED);
    if constexpr (std::is_integral<T>::value) {
        while (!__atomic_compare_exchange_n(p, &old, f(old), true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {}
    } else {  // floating point: compare and swap the bits
        typedef typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type Bits;
        Bits expected;
        memcpy(&expected, &old, sizeof(T));
        for (;;) {
            const T next = f(old);
            Bits desired;
            memcpy(&desired, &next, sizeof(T));
            if (__atomic_compare_exchange_n(reinterpret_cast<Bits*>(p), &expected, desired, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) break;
            memcpy(&old, &expected, sizeof(T));
        }
    }
    return old;
}
}  // namespace gptjx_emu
template <typename T> inline T atomicAdd(T* p, T v) { return gptjx_emu::atomic_update(p, [v](T o) { return (T)(o + v); }); }
template <typename T> inline T atomicSub(T* p, T v) { return gptjx_emu::atomic_update(p, [v](T o) { return (T)(o - v); }); }
template <typename T> inline T atomicExch(T* p, T v) { return gptjx_emu::atomic_update(p, [v](T) { return v; }); }
template <typename T> inline T atomicMin(T* p, T v) { return gptjx_emu::atomic_update(p, [v](T o) { return v < o ? v : o; }); }
template <typename T> inline T atomicMax(T* p, T v) { return gptjx_emu::atomic_update(p, [v](T o) { return v > o ? v : o; }); }
template <typename T> inline T atomicAnd(T* p, T v) { return gptjx_emu::atomic_update(p, [v](T o) { return (T)(o & v); }); }
template <typename T> inline T atomicOr(T* p, T v) { return gptjx_emu::atomic_update(p, [v](T o) { return (T)(o | v); }); }
template <typename T> inline T atomicXor(T* p, T v) { return gptjx_emu::atomic_update(p, [v](T o) { return (T)(o ^ v); }); }
template <typename T> inline T atomicCAS(T* p, T compare, T v) {
    __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;
}
inline unsigned atomicInc(unsigned* p, unsigned limit) { return gptjx_emu::atomic_update(p, [limit](unsigned o) { return o >= limit ? 0u : o + 1; }); }
inline unsigned atomicDec(unsigned* p, unsigned limit) {
    return gptjx_emu::atomic_update(p, [limit](unsigned o) { return (o == 0 || o > limit) ? limit : o - 1; });
}

// ---- memory access hints (all plain accesses on the host) -----------------------------------
template <typename T> inline T __ldg(const T* p) { return *p; }
template <typename T> inline T __ldcg(const T* p) { return *p; }
template <typename T> inline T __ldca(const T* p) { return *p; }
template <typename T> inline T __ldcs(const T* p) { return *p; }
template <typename T> inline T __ldlu(const T* p) { return *p; }
template <typename T> inline T __ldcv(const T* p) { return *p; }
template <typename T> inline void __stwb(T* p, T v) { *p = v; }
template <typename T> inline void __stcg(T* p, T v) { *p = v; }
template <typename T> inline void __stcs(T* p, T v) { *p = v; }
template <typename T> inline void __stwt(T* p, T v) { *p = v; }

// ---- integer and bit intrinsics ---------------------------------------------------------------
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline unsigned min(int a, unsigned b) { return min((unsigned)a, b); }
inline unsigned min(unsigned a, int b) { return min(a, (unsigned)b); }
inline unsigned max(int a, unsigned b) { return max((unsigned)a, b); }
inline unsigned max(unsigned a, int b) { return max(a, (unsigned)b); }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
    return (x >> 16) | (x << 16);
}
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline int __mul24(int a, int b) { return ((a << 8) >> 8) * ((b << 8) >> 8); }
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }

// ---- float intrinsics -------------------------------------------------------------------------
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline long long __double_as_longlong(double d) { long long i; memcpy(&i, &d, 8); return i; }
inline double __longlong_as_double(long long i) { double d; memcpy(&d, &i, 8); return d; }
inline int __float2int_rn(float f) { return (int)nearbyintf(f); }
inline int __float2int_rz(float f) { return (int)f; }
inline int __float2int_rd(float f) { return (int)floorf(f); }
inline int __float2int_ru(float f) { return (int)ceilf(f); }
inline unsigned __float2uint_rn(float f) { return (unsigned)nearbyintf(f); }
inline float __int2float_rn(int i) { return (float)i; }
inline float __uint2float_rn(unsigned i) { return (float)i; }
// The fast-math intrinsics are computed exactly here; on the device they are approximations
// (a few ulp), which is why device results are compared with tolerances.
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frsqrt_rn(float x) { return 1.f / sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __saturatef(float x) { return x > 1.f ? 1.f : x >= 0.f ? x : 0.f; }
inline float rsqrtf(float x) { return 1.f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float exp10f(float x) { return powf(10.f, x); }

#undef GPTJX_EMU_VEC2
#undef GPTJX_EMU_VEC3
#undef GPTJX_EMU_VEC4
