// The kernel library: libgptjx-emu-kernels.so beside this driver (or GPTJX_CUDA_EMULATOR_KERNELS),
// built from kernels/*.cu. Kernels are found by their extern "C" names, the names the PTX's .entry
// directives carry.
#include <dlfcn.h>
#include <algorithm>
#include <link.h>
#include <string.h>

#include "emulator.h"

namespace emu {

extern const gptjx_emu_runtime g_runtime;  // executor.cpp

namespace {

void* g_library = nullptr;
std::map<std::string, const gptjx_emu_kernel*> g_kernels;
gptjx_emu_dynamic_shared_fn g_dynamic_shared = nullptr;
size_t g_dynamic_bytes = 0;
std::string g_library_path;

std::string own_directory() {
    Dl_info info{};
    if (!dladdr(reinterpret_cast<void*>(&own_directory), &info) || !info.dli_fname) return ".";
    std::string path = info.dli_fname;
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

struct TlsBlock {
    uint8_t* probe = nullptr;  // an address inside the kernel library's thread-local block
    uint8_t* data = nullptr;
    size_t size = 0;
};

int find_tls(struct dl_phdr_info* info, size_t, void* out) {
    auto* block = static_cast<TlsBlock*>(out);
    if (!info->dlpi_tls_data) return 0;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        if (info->dlpi_phdr[i].p_type != PT_TLS) continue;
        auto* base = static_cast<uint8_t*>(info->dlpi_tls_data);
        const size_t size = info->dlpi_phdr[i].p_memsz;
        if (block->probe >= base && block->probe < base + size) {
            block->data = base;
            block->size = size;
            return 1;
        }
    }
    return 0;
}

}  // namespace

bool load_kernel_library(std::string& error) {
    if (g_library) return true;
    const char* override_path = getenv("GPTJX_CUDA_EMULATOR_KERNELS");
    g_library_path = override_path && *override_path ? override_path : own_directory() + "/libgptjx-emu-kernels.so";
    g_library = dlopen(g_library_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!g_library) {
        error = std::string("cannot load the emulator's kernel library: ") + dlerror();
        return false;
    }
    auto list = reinterpret_cast<gptjx_emu_kernels_fn>(dlsym(g_library, "gptjx_emu_kernels"));
    g_dynamic_shared = reinterpret_cast<gptjx_emu_dynamic_shared_fn>(dlsym(g_library, "gptjx_emu_dynamic_shared"));
    auto bytes = static_cast<const size_t*>(dlsym(g_library, "gptjx_emu_dynamic_shared_bytes"));
    auto abi = static_cast<const int*>(dlsym(g_library, "gptjx_emu_abi_version"));
    if (abi && *abi != GPTJX_EMU_ABI_VERSION) {
        error = g_library_path + " was built for another version of the emulator (rebuild it with tools/cuda-emulator/build.sh)";
        dlclose(g_library);
        g_library = nullptr;
        return false;
    }
    if (!list || !g_dynamic_shared || !bytes || !abi) {
        error = g_library_path + " is not an emulator kernel library (missing gptjx_emu_kernels)";
        dlclose(g_library);
        g_library = nullptr;
        return false;
    }
    g_dynamic_bytes = *bytes;
    int n = 0;
    const gptjx_emu_kernel* kernels = list(&g_runtime, &n);
    for (int i = 0; i < n; ++i) g_kernels[kernels[i].name] = &kernels[i];
    return true;
}

const gptjx_emu_kernel* host_kernel(const std::string& name) {
    auto it = g_kernels.find(name);
    return it == g_kernels.end() ? nullptr : it->second;
}

// Fills the calling thread's shared memory (the kernel library's thread-local block: static
// __shared__ variables and the dynamic arrays) with 0xff, as far as one block can see it.
void fill_shared_memory(unsigned dynamic_bytes) {
    // Asking for the dynamic arrays first also allocates the block for this thread.
    std::vector<std::pair<uint8_t*, uint8_t*>> dynamic;
    for (int i = 0; uint8_t* a = g_dynamic_shared(i); ++i) dynamic.push_back({a, a + g_dynamic_bytes});
    thread_local TlsBlock block;
    if (!block.data && !dynamic.empty()) {
        block.probe = dynamic[0].first;
        dl_iterate_phdr(find_tls, &block);
    }
    if (!block.data) return;
    uint8_t* p = block.data;
    uint8_t* end = block.data + block.size;
    std::sort(dynamic.begin(), dynamic.end());
    for (auto [a, b] : dynamic) {
        if (a > p) memset(p, 0xff, a - p);
        memset(a, 0xff, dynamic_bytes < g_dynamic_bytes ? dynamic_bytes : g_dynamic_bytes);
        p = b > p ? b : p;
    }
    if (end > p) memset(p, 0xff, end - p);
}

}  // namespace emu
