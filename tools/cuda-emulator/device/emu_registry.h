// Registers the kernels of one kernels/*.cu file with the kernel library: the build appends
// GPTJX_EMU_KERNEL(name) for every extern "C" __global__ function it finds in the file. The
// registration records the C++ signature (parameter sizes; which are pointers, and to const
// data or not), so the driver can unpack kernelParams, check them against the PTX, and know
// which allocations a launch may write.
#pragma once
#include <utility>

#include "emu_device.h"

namespace gptjx_emu {

void register_kernel(const gptjx_emu_kernel* kernel);

template <typename A>
constexpr unsigned char pointer_kind() {
    return !std::is_pointer<A>::value ? 0 : std::is_const<typename std::remove_pointer<A>::type>::value ? 1 : 2;
}

template <typename... A>
struct Signature {
    static constexpr unsigned short sizes[sizeof...(A) + 1] = {(unsigned short)sizeof(A)..., 0};
    static constexpr unsigned char pointers[sizeof...(A) + 1] = {pointer_kind<A>()..., 0};

    template <size_t... I>
    static void call(void* f, void* const* p, std::index_sequence<I...>) {
        reinterpret_cast<void (*)(A...)>(f)(*static_cast<typename std::remove_cv<A>::type*>(p[I])...);
    }
    static void invoke(void* f, void* const* p) { call(f, p, std::index_sequence_for<A...>{}); }
};

struct Registrar {
    gptjx_emu_kernel kernel;
    template <typename... A>
    Registrar(const char* name, void (*f)(A...))
        : kernel{name, reinterpret_cast<void*>(f), &Signature<A...>::invoke, (int)sizeof...(A), Signature<A...>::sizes,
                 Signature<A...>::pointers} {
        register_kernel(&kernel);
    }
};

}  // namespace gptjx_emu

#define GPTJX_EMU_KERNEL(name) static ::gptjx_emu::Registrar gptjx_emu_registrar_##name(#name, &name);
