// The kernel library's own part: the runtime pointer device code calls through, and the list
// of registered kernels the driver asks for.
#include <vector>

#include "emu_registry.h"

namespace gptjx_emu {

const gptjx_emu_runtime* g_runtime = nullptr;

static std::vector<gptjx_emu_kernel>& registry() {
    static std::vector<gptjx_emu_kernel> kernels;
    return kernels;
}

void register_kernel(const gptjx_emu_kernel* kernel) { registry().push_back(*kernel); }

}  // namespace gptjx_emu

extern "C" __attribute__((visibility("default"))) const int gptjx_emu_abi_version = GPTJX_EMU_ABI_VERSION;

extern "C" __attribute__((visibility("default"))) const gptjx_emu_kernel* gptjx_emu_kernels(const gptjx_emu_runtime* runtime, int* count) {
    gptjx_emu::g_runtime = runtime;
    *count = (int)gptjx_emu::registry().size();
    return gptjx_emu::registry().data();
}
