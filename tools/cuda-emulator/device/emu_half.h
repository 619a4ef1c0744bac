// __half and __nv_bfloat16 on the host, with the device's conversions bit for bit:
// fp32 -> fp16/bf16 rounds to nearest even (subnormals included, overflow to infinity),
// and every NaN becomes the canonical NaN the PTX cvt instructions produce (0x7fff).
// Arithmetic on the 16-bit types is done in fp32 and rounded once, as the device's
// half-precision instructions do for the sums and products kernels use.
#pragma once
#include <stdint.h>
#include <string.h>

namespace gptjx_emu {

inline uint32_t float_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
inline float bits_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

inline uint16_t float_to_half_bits(float f) {
    const uint32_t x = float_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x7fffu;                   // NaN
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // >= 65520 rounds to infinity
    if (a < 0x38800000u) {                                   // below the smallest normal half (2^-14)
        if (a < 0x33000000u) return sign;                    // below half the smallest subnormal (2^-25): zero
        // subnormal: value = m * 2^-24 with m = round(a_value * 2^24)
        const uint32_t e = a >> 23, mant = (a & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - e;                      // 2^-24 units: mant * 2^(e - 127 - 23 + 24)
        const uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        const uint32_t r = q + (rem > halfway || (rem == halfway && (q & 1)));
        return (uint16_t)(sign | r);
    }
    // normal: rebias the exponent (127 -> 15) and round 23 mantissa bits to 10
    const uint32_t v = a - 0x38000000u;                      // exponent - 112
    const uint32_t q = v >> 13, rem = v & 0x1fffu;
    const uint32_t r = q + (rem > 0x1000u || (rem == 0x1000u && (q & 1)));
    return (uint16_t)(sign | r);                             // a carry into the exponent is the right rounding
}

inline float half_bits_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu) return bits_float(sign | 0x7f800000u | (m << 13));  // inf / NaN
    if (e != 0) return bits_float(sign | ((e + 112) << 23) | (m << 13));
    if (m == 0) return bits_float(sign);
    // subnormal: m * 2^-24
    float f = (float)m * 5.9604644775390625e-8f;
    return sign ? -f : f;
}

inline uint16_t float_to_bfloat16_bits(float f) {
    const uint32_t x = float_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline float bfloat16_bits_to_float(uint16_t b) { return bits_float((uint32_t)b << 16); }

}  // namespace gptjx_emu

struct __half_raw { unsigned short x; };
struct __nv_bfloat16_raw { unsigned short x; };

struct __half {
    unsigned short __x;
    __half() = default;
    __half(float f) : __x(gptjx_emu::float_to_half_bits(f)) {}
    __half(double f) : __x(gptjx_emu::float_to_half_bits((float)f)) {}
    __half(int i) : __x(gptjx_emu::float_to_half_bits((float)i)) {}
    __half(__half_raw r) : __x(r.x) {}
    operator float() const { return gptjx_emu::half_bits_to_float(__x); }
    operator __half_raw() const { return __half_raw{__x}; }
};

struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) : __x(gptjx_emu::float_to_bfloat16_bits(f)) {}
    __nv_bfloat16(double f) : __x(gptjx_emu::float_to_bfloat16_bits((float)f)) {}
    __nv_bfloat16(int i) : __x(gptjx_emu::float_to_bfloat16_bits((float)i)) {}
    __nv_bfloat16(__nv_bfloat16_raw r) : __x(r.x) {}
    operator float() const { return gptjx_emu::bfloat16_bits_to_float(__x); }
    operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
};

struct __attribute__((aligned(4))) __half2 {
    __half x, y;
    __half2() = default;
    __half2(__half a, __half b) : x(a), y(b) {}
};

struct __attribute__((aligned(4))) __nv_bfloat162 {
    __nv_bfloat16 x, y;
    __nv_bfloat162() = default;
    __nv_bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) : x(a), y(b) {}
};

typedef __half half;
typedef __half2 half2;
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

// ---- fp16 ----
inline float __half2float(__half h) { return (float)h; }
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline __half2 __float2half2_rn(float f) { return __half2(__half(f), __half(f)); }
inline __half2 __floats2half2_rn(float a, float b) { return __half2(__half(a), __half(b)); }
inline __half2 __halves2half2(__half a, __half b) { return __half2(a, b); }
inline __half2 __half2half2(__half a) { return __half2(a, a); }
inline __half __low2half(__half2 h) { return h.x; }
inline __half __high2half(__half2 h) { return h.y; }
inline float __low2float(__half2 h) { return (float)h.x; }
inline float __high2float(__half2 h) { return (float)h.y; }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline short __half_as_short(__half h) { return (short)h.__x; }
inline __half __ushort_as_half(unsigned short u) { return __half(__half_raw{u}); }
inline __half __short_as_half(short s) { return __half(__half_raw{(unsigned short)s}); }
inline __half __hadd(__half a, __half b) { return __half((float)a + (float)b); }
inline __half __hsub(__half a, __half b) { return __half((float)a - (float)b); }
inline __half __hmul(__half a, __half b) { return __half((float)a * (float)b); }
inline __half __hdiv(__half a, __half b) { return __half((float)a / (float)b); }
inline __half __hfma(__half a, __half b, __half c) { return __half((float)a * (float)b + (float)c); }
inline __half __hneg(__half a) { return __half(__half_raw{(unsigned short)(a.__x ^ 0x8000u)}); }
inline bool __hisnan(__half a) { return (a.__x & 0x7fffu) > 0x7c00u; }
inline bool __hisinf(__half a) { return (a.__x & 0x7fffu) == 0x7c00u; }
inline __half __hmax(__half a, __half b) { return (float)a >= (float)b || __hisnan(b) ? a : b; }
inline __half __hmin(__half a, __half b) { return (float)a <= (float)b ? a : b; }

// ---- bf16 ----
inline float __bfloat162float(__nv_bfloat16 b) { return (float)b; }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat162 __float2bfloat162_rn(float f) { return __nv_bfloat162(__nv_bfloat16(f), __nv_bfloat16(f)); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return __nv_bfloat162(__nv_bfloat16(a), __nv_bfloat16(b)); }
inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat162(a, b); }
inline __nv_bfloat16 __low2bfloat16(__nv_bfloat162 h) { return h.x; }
inline __nv_bfloat16 __high2bfloat16(__nv_bfloat162 h) { return h.y; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16(__nv_bfloat16_raw{u}); }
inline __nv_bfloat16 __hadd(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat16((float)a + (float)b); }
inline __nv_bfloat16 __hmul(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat16((float)a * (float)b); }
inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c) { return __nv_bfloat16((float)a * (float)b + (float)c); }
