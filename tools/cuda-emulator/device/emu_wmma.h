// nvcuda::wmma for the emulated device: the m16n16k16 shape with fp16 / bf16 inputs and fp32 or
// fp16 accumulators, which is what tensor-core kernels here use.
//
// Fragments hold, per lane, the element counts the PTX ISA gives for m16n16k16 (a and b: eight
// .f16x2 / .bf16x2 registers = 16 elements; an fp32 accumulator: 8), in the per-lane layout of the
// sm_80 mma.m16n8k16 instruction that wmma lowers to, for lane l, group g = l / 4, t = l % 4:
//   accumulator element i: row g + 8 * ((i / 2) % 2), column 2t + i % 2 + 8 * (i / 4)
//   matrix_a element i:    the same (row, k) as accumulator element i % 8
//   matrix_b element i:    k 2t + i % 2 + 8 * ((i / 2) % 2), column g + 8 * ((i % 8) / 4)
// (a and b hold each element twice: elements 8..15 repeat 0..7). Code that treats fragment
// elements uniformly (scaling, conversion) behaves as on the device; code that relies on the
// mapping is device-specific, as CUDA documents.
//
// load/store/mma are warp-collective: every lane must call them together with the same pointer,
// stride and layout. The PTX alignment rules are checked: the pointer 256-bit (32-byte) aligned,
// the stride a multiple of 16 bytes.
#pragma once
#include "emu_device.h"

namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };

template <typename T, int Size>
struct fragment_storage {
    typedef T element_type;
    typedef T storage_element_type;
    enum { num_elements = Size };
    T x[Size];
};

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
class fragment;

template <typename T, typename L>
class fragment<matrix_a, 16, 16, 16, T, L> : public fragment_storage<T, 16> {
    static_assert(std::is_same<T, __half>::value || std::is_same<T, __nv_bfloat16>::value, "matrix_a of __half or __nv_bfloat16");
};
template <typename T, typename L>
class fragment<matrix_b, 16, 16, 16, T, L> : public fragment_storage<T, 16> {
    static_assert(std::is_same<T, __half>::value || std::is_same<T, __nv_bfloat16>::value, "matrix_b of __half or __nv_bfloat16");
};
template <typename T>
class fragment<accumulator, 16, 16, 16, T, void> : public fragment_storage<T, 8> {
    static_assert(std::is_same<T, float>::value || std::is_same<T, __half>::value, "accumulator of float or __half");
};

}  // namespace wmma
}  // namespace nvcuda

namespace gptjx_emu {
namespace wmma_detail {

using namespace nvcuda::wmma;

// (row, column) of element i held by lane l.
inline void accumulator_coord(int l, int i, int& r, int& c) {
    const int g = l >> 2, t = l & 3;
    r = g + 8 * ((i >> 1) & 1);
    c = 2 * t + (i & 1) + 8 * (i >> 2);
}
inline void a_coord(int l, int i, int& r, int& k) { accumulator_coord(l, i & 7, r, k); }
inline void b_coord(int l, int i, int& k, int& c) {
    const int g = l >> 2, t = l & 3;
    i &= 7;
    k = 2 * t + (i & 1) + 8 * ((i >> 1) & 1);
    c = g + 8 * (i >> 2);
}

// The same, tabulated: row * 16 + column of element i of lane l.
struct Layout {
    unsigned char at[32][16];
    template <typename F>
    explicit Layout(F coord) {
        for (int l = 0; l < 32; ++l)
            for (int i = 0; i < 16; ++i) {
                int r, c;
                coord(l, i, r, c);
                at[l][i] = (unsigned char)(r * 16 + c);
            }
    }
};
inline const Layout& a_layout() { static const Layout t([](int l, int i, int& r, int& c) { a_coord(l, i, r, c); }); return t; }
inline const Layout& b_layout() { static const Layout t([](int l, int i, int& r, int& c) { b_coord(l, i, r, c); }); return t; }
inline const Layout& accumulator_layout() {
    static const Layout t([](int l, int i, int& r, int& c) { accumulator_coord(l, i & 7, r, c); });
    return t;
}

template <typename Use> struct Coords;
template <> struct Coords<matrix_a> { static const Layout& layout() { return a_layout(); } };
template <> struct Coords<matrix_b> { static const Layout& layout() { return b_layout(); } };
template <> struct Coords<accumulator> { static const Layout& layout() { return accumulator_layout(); } };

struct MemoryArgs {
    void* fragment;
    const void* pointer;
    unsigned ldm;
    bool row_major;
};

inline const char* check_same(void* const* lanes, unsigned mask, const char* what) {
    static thread_local char message[200];
    if (mask != 0xffffffffu) {
        snprintf(message, sizeof message, "%s needs all 32 lanes of the warp (mask 0x%08x)", what, mask);
        return message;
    }
    const MemoryArgs* first = static_cast<const MemoryArgs*>(lanes[0]);
    for (int l = 1; l < 32; ++l) {
        const MemoryArgs* a = static_cast<const MemoryArgs*>(lanes[l]);
        if (a->pointer != first->pointer || a->ldm != first->ldm || a->row_major != first->row_major) {
            snprintf(message, sizeof message, "%s: lane %d passes pointer %p, stride %u; lane 0 passes %p, stride %u", what, l,
                     a->pointer, a->ldm, first->pointer, first->ldm);
            return message;
        }
    }
    return nullptr;
}

template <typename T>
inline const char* check_alignment(const MemoryArgs* a, const char* what) {
    static thread_local char message[200];
    if (reinterpret_cast<uintptr_t>(a->pointer) % 32 != 0) {
        snprintf(message, sizeof message, "%s: pointer %p is not 256-bit aligned", what, a->pointer);
        return message;
    }
    if ((a->ldm * sizeof(T)) % 16 != 0) {
        snprintf(message, sizeof message, "%s: stride %u elements of %zu bytes is not a multiple of 16 bytes", what, a->ldm, sizeof(T));
        return message;
    }
    return nullptr;
}

template <typename Use, typename T, int Size>
inline const char* resolve_load(void* const* lanes, unsigned mask) {
    if (const char* e = check_same(lanes, mask, "wmma::load_matrix_sync")) return e;
    const MemoryArgs* first = static_cast<const MemoryArgs*>(lanes[0]);
    if (const char* e = check_alignment<T>(first, "wmma::load_matrix_sync")) return e;
    const T* p = static_cast<const T*>(first->pointer);
    T tile[256];
    for (int r = 0; r < 16; ++r)
        for (int c = 0; c < 16; ++c) tile[r * 16 + c] = first->row_major ? p[(size_t)r * first->ldm + c] : p[(size_t)c * first->ldm + r];
    const Layout& layout = Coords<Use>::layout();
    for (int l = 0; l < 32; ++l) {
        T* x = static_cast<T*>(static_cast<MemoryArgs*>(lanes[l])->fragment);
        for (int i = 0; i < Size; ++i) x[i] = tile[layout.at[l][i]];
    }
    return nullptr;
}

template <typename T>
inline const char* resolve_store(void* const* lanes, unsigned mask) {
    if (const char* e = check_same(lanes, mask, "wmma::store_matrix_sync")) return e;
    const MemoryArgs* first = static_cast<const MemoryArgs*>(lanes[0]);
    if (const char* e = check_alignment<T>(first, "wmma::store_matrix_sync")) return e;
    T* p = static_cast<T*>(const_cast<void*>(first->pointer));
    T tile[256];
    const Layout& layout = accumulator_layout();
    for (int l = 0; l < 32; ++l) {
        const T* x = static_cast<const T*>(static_cast<MemoryArgs*>(lanes[l])->fragment);
        for (int i = 0; i < 8; ++i) tile[layout.at[l][i]] = x[i];
    }
    for (int r = 0; r < 16; ++r)
        for (int c = 0; c < 16; ++c) (first->row_major ? p[(size_t)r * first->ldm + c] : p[(size_t)c * first->ldm + r]) = tile[r * 16 + c];
    return nullptr;
}

struct MmaArgs {
    void* d;
    const void* a;
    const void* b;
    const void* c;
};

// D = A B + C. Products of fp16 or bf16 values are exact in fp32, so a multiply and an add give
// the fused result; the sums run in k order.
template <typename TIn, typename TAcc>
inline const char* resolve_mma(void* const* lanes, unsigned mask) {
    if (mask != 0xffffffffu) return "wmma::mma_sync needs all 32 lanes of the warp";
    float A[256], B[256], C[256];
    const Layout &la = a_layout(), &lb = b_layout(), &lc = accumulator_layout();
    for (int l = 0; l < 32; ++l) {
        const MmaArgs* m = static_cast<const MmaArgs*>(lanes[l]);
        const TIn* a = static_cast<const TIn*>(m->a);
        const TIn* b = static_cast<const TIn*>(m->b);
        const TAcc* c = static_cast<const TAcc*>(m->c);
        for (int i = 0; i < 8; ++i) {
            A[la.at[l][i]] = (float)a[i];
            B[lb.at[l][i]] = (float)b[i];
            C[lc.at[l][i]] = (float)c[i];
        }
    }
    for (int r = 0; r < 16; ++r)
        for (int k = 0; k < 16; ++k) {
            const float a = A[r * 16 + k];
            for (int col = 0; col < 16; ++col) C[r * 16 + col] += a * B[k * 16 + col];
        }
    for (int l = 0; l < 32; ++l) {
        TAcc* d = static_cast<TAcc*>(static_cast<const MmaArgs*>(lanes[l])->d);
        for (int i = 0; i < 8; ++i) d[i] = TAcc(C[lc.at[l][i]]);
    }
    return nullptr;
}

}  // namespace wmma_detail
}  // namespace gptjx_emu

namespace nvcuda {
namespace wmma {

template <typename Use, int M, int N, int K, typename T, typename L, typename V>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, const V& v) {
    for (int i = 0; i < fragment<Use, M, N, K, T, L>::num_elements; ++i) f.x[i] = T(v);
}

template <typename Use, typename T, typename L>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, L>& f, const T* p, unsigned ldm, GPTJX_EMU_SITE) {
    static_assert(!std::is_same<Use, accumulator>::value, "an accumulator load takes a layout_t");
    gptjx_emu::wmma_detail::MemoryArgs args{f.x, p, ldm, std::is_same<L, row_major>::value};
    gptjx_emu::g_runtime->warp_collective("wmma::load_matrix_sync", 0xffffffffu, &args,
                                          gptjx_emu::wmma_detail::resolve_load<Use, T, 16>, file, line);
}

template <typename T>
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, T, void>& f, const T* p, unsigned ldm, layout_t layout, GPTJX_EMU_SITE) {
    gptjx_emu::wmma_detail::MemoryArgs args{f.x, p, ldm, layout == mem_row_major};
    gptjx_emu::g_runtime->warp_collective("wmma::load_matrix_sync", 0xffffffffu, &args,
                                          gptjx_emu::wmma_detail::resolve_load<accumulator, T, 8>, file, line);
}

template <typename T>
inline void store_matrix_sync(T* p, const fragment<accumulator, 16, 16, 16, T, void>& f, unsigned ldm, layout_t layout, GPTJX_EMU_SITE) {
    gptjx_emu::wmma_detail::MemoryArgs args{const_cast<T*>(f.x), p, ldm, layout == mem_row_major};
    gptjx_emu::g_runtime->warp_collective("wmma::store_matrix_sync", 0xffffffffu, &args, gptjx_emu::wmma_detail::resolve_store<T>,
                                          file, line);
}

template <typename TIn, typename LA, typename LB, typename TAcc>
inline void mma_sync(fragment<accumulator, 16, 16, 16, TAcc, void>& d, const fragment<matrix_a, 16, 16, 16, TIn, LA>& a,
                     const fragment<matrix_b, 16, 16, 16, TIn, LB>& b, const fragment<accumulator, 16, 16, 16, TAcc, void>& c,
                     GPTJX_EMU_SITE) {
    gptjx_emu::wmma_detail::MmaArgs args{d.x, a.x, b.x, c.x};
    gptjx_emu::g_runtime->warp_collective("wmma::mma_sync", 0xffffffffu, &args, gptjx_emu::wmma_detail::resolve_mma<TIn, TAcc>,
                                          file, line);
}

}  // namespace wmma
}  // namespace nvcuda
