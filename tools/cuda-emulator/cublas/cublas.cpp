// The cuBLAS subset the engine uses, on the emulated device: handles, stream, workspace and math
// mode, and cublasGemmEx for fp16 / bf16 / fp32 operands with fp32 accumulation (column-major,
// any transpose and leading dimensions). Products are queued on the handle's stream like a kernel,
// read their operands when they run, and fail the launch (CUDA_ERROR_ILLEGAL_ADDRESS) if an
// operand reaches outside its allocation. Anything else returns CUBLAS_STATUS_NOT_SUPPORTED.
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../device/emu_half.h"

// The emulated driver beside this library (same folder), bound by path so that another libcuda.so.1
// already in the process cannot stand in for it.
namespace bridge {

struct Driver {
    int (*current_context)() = nullptr;
    int (*check_stream)(void*) = nullptr;
    bool (*device_range)(uintptr_t, size_t) = nullptr;
    void (*describe_address)(uintptr_t, std::string*) = nullptr;
    int (*enqueue)(void*, const std::string*, std::function<int(std::string&)>*) = nullptr;
    bool loaded = false;
};

const Driver& driver() {
    static const Driver d = [] {
        Driver r;
        Dl_info self{};
        if (!dladdr(reinterpret_cast<void*>(&driver), &self) || !self.dli_fname) return r;
        std::string path = self.dli_fname;
        path = path.substr(0, path.rfind('/') + 1) + "libcuda.so.1";
        void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!h) return r;
        r.current_context = reinterpret_cast<int (*)()>(dlsym(h, "gptjx_emu_bridge_current_context"));
        r.check_stream = reinterpret_cast<int (*)(void*)>(dlsym(h, "gptjx_emu_bridge_check_stream"));
        r.device_range = reinterpret_cast<bool (*)(uintptr_t, size_t)>(dlsym(h, "gptjx_emu_bridge_device_range"));
        r.describe_address = reinterpret_cast<void (*)(uintptr_t, std::string*)>(dlsym(h, "gptjx_emu_bridge_describe_address"));
        r.enqueue = reinterpret_cast<int (*)(void*, const std::string*, std::function<int(std::string&)>*)>(dlsym(h, "gptjx_emu_bridge_enqueue"));
        r.loaded = r.current_context && r.check_stream && r.device_range && r.describe_address && r.enqueue;
        return r;
    }();
    return d;
}

int current_context() { return driver().loaded ? driver().current_context() : 3; }
int check_stream(void* s) { return driver().check_stream(s); }
bool device_range(uintptr_t p, size_t n) { return driver().device_range(p, n); }
std::string describe_address(uintptr_t p) {
    std::string s;
    driver().describe_address(p, &s);
    return s;
}
int enqueue(void* stream, const std::string& what, std::function<int(std::string&)> work) { return driver().enqueue(stream, &what, &work); }

}  // namespace bridge

namespace {

enum Status {
    SUCCESS = 0,
    NOT_INITIALIZED = 1,
    INVALID_VALUE = 7,
    EXECUTION_FAILED = 13,
    NOT_SUPPORTED = 15,
};

enum DataType { R32F = 0, R16F = 2, R16BF = 14 };
enum Op { OpN = 0, OpT = 1, OpC = 2 };

struct Handle {
    void* stream = nullptr;
    uintptr_t workspace = 0;
    size_t workspace_bytes = 0;
    int math_mode = 0;
};

std::mutex g_lock;
std::set<Handle*> g_handles;

bool live(Handle* h) {
    std::lock_guard<std::mutex> guard(g_lock);
    return h && g_handles.count(h);
}

size_t element_size(int type) { return type == R32F ? 4 : 2; }

float load(const uint8_t* base, size_t index, int type) {
    switch (type) {
        case R32F: { float f; memcpy(&f, base + index * 4, 4); return f; }
        case R16F: { uint16_t h; memcpy(&h, base + index * 2, 2); return gptjx_emu::half_bits_to_float(h); }
        default: { uint16_t b; memcpy(&b, base + index * 2, 2); return gptjx_emu::bfloat16_bits_to_float(b); }
    }
}

void store(uint8_t* base, size_t index, int type, float v) {
    switch (type) {
        case R32F: memcpy(base + index * 4, &v, 4); break;
        case R16F: { uint16_t h = gptjx_emu::float_to_half_bits(v); memcpy(base + index * 2, &h, 2); break; }
        default: { uint16_t b = gptjx_emu::float_to_bfloat16_bits(v); memcpy(base + index * 2, &b, 2); break; }
    }
}

// Elements a column-major operand of `rows` x `cols` (as stored) with leading dimension ld spans.
size_t span(long rows, long cols, long ld) { return rows == 0 || cols == 0 ? 0 : (size_t)(cols - 1) * ld + rows; }

struct Gemm {
    int transa, transb;
    long m, n, k;
    float alpha, beta;
    uintptr_t a, b, c;
    int type_a, type_b, type_c;
    long lda, ldb, ldc;

    bool check(const char* name, uintptr_t p, size_t elements, int type, std::string& error) const {
        if (elements == 0 || bridge::device_range(p, elements * element_size(type))) return true;
        error = std::string("cublasGemmEx: operand ") + name + " [" + std::to_string(elements) + " elements] reaches outside device memory: " +
                bridge::describe_address(p);
        return false;
    }

    // C = alpha op(A) op(B) + beta C; each dot product summed in fp32 in eight interleaved partial sums.
    int run(std::string& error) const {
        const long a_rows = transa == OpN ? m : k, a_cols = transa == OpN ? k : m;
        const long b_rows = transb == OpN ? k : n, b_cols = transb == OpN ? n : k;
        if (!check("A", a, span(a_rows, a_cols, lda), type_a, error) || !check("B", b, span(b_rows, b_cols, ldb), type_b, error) ||
            !check("C", c, span(m, n, ldc), type_c, error))
            return 700;  // CUDA_ERROR_ILLEGAL_ADDRESS, as a kernel reading there would fail
        const auto* pa = reinterpret_cast<const uint8_t*>(a);
        const auto* pb = reinterpret_cast<const uint8_t*>(b);
        auto* pc = reinterpret_cast<uint8_t*>(c);
        std::vector<float> rows((size_t)m * k), cols((size_t)n * k);  // op(A) by rows, op(B) by columns, k contiguous
        for (long i = 0; i < m; ++i)
            for (long p = 0; p < k; ++p) rows[(size_t)i * k + p] = load(pa, transa == OpN ? (size_t)p * lda + i : (size_t)i * lda + p, type_a);
        for (long j = 0; j < n; ++j)
            for (long p = 0; p < k; ++p) cols[(size_t)j * k + p] = load(pb, transb == OpN ? (size_t)j * ldb + p : (size_t)p * ldb + j, type_b);
        for (long j = 0; j < n; ++j) {
            const float* bj = &cols[(size_t)j * k];
            for (long i = 0; i < m; ++i) {
                const float* ai = &rows[(size_t)i * k];
                float s[8] = {};
                long p = 0;
                for (; p + 8 <= k; p += 8)
                    for (int u = 0; u < 8; ++u) s[u] += ai[p + u] * bj[p + u];
                for (; p < k; ++p) s[p & 7] += ai[p] * bj[p];
                const float dot = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
                const size_t at = (size_t)j * ldc + i;
                const float v = beta == 0.f ? alpha * dot : alpha * dot + beta * load(pc, at, type_c);
                store(pc, at, type_c, v);
            }
        }
        return 0;
    }
};

}  // namespace

#define EXPORT extern "C" __attribute__((visibility("default")))

EXPORT int cublasCreate_v2(Handle** handle) {
    if (!handle) return INVALID_VALUE;
    if (bridge::current_context() != 0) return NOT_INITIALIZED;
    auto* h = new Handle();
    std::lock_guard<std::mutex> guard(g_lock);
    g_handles.insert(h);
    *handle = h;
    return SUCCESS;
}

EXPORT int cublasDestroy_v2(Handle* handle) {
    std::lock_guard<std::mutex> guard(g_lock);
    if (!handle || !g_handles.erase(handle)) return NOT_INITIALIZED;
    delete handle;
    return SUCCESS;
}

EXPORT int cublasGetVersion_v2(Handle* handle, int* version) {
    if (!live(handle)) return NOT_INITIALIZED;
    if (!version) return INVALID_VALUE;
    *version = 120804;
    return SUCCESS;
}

EXPORT int cublasSetStream_v2(Handle* handle, void* stream) {
    if (!live(handle)) return NOT_INITIALIZED;
    if (bridge::check_stream(stream) != 0) return INVALID_VALUE;
    handle->stream = stream;
    return SUCCESS;
}

EXPORT int cublasGetStream_v2(Handle* handle, void** stream) {
    if (!live(handle)) return NOT_INITIALIZED;
    if (!stream) return INVALID_VALUE;
    *stream = handle->stream;
    return SUCCESS;
}

EXPORT int cublasSetWorkspace_v2(Handle* handle, uintptr_t workspace, size_t bytes) {
    if (!live(handle)) return NOT_INITIALIZED;
    if (bytes && (workspace % 256 != 0 || !bridge::device_range(workspace, bytes))) return INVALID_VALUE;
    handle->workspace = workspace;
    handle->workspace_bytes = bytes;
    return SUCCESS;
}

EXPORT int cublasSetMathMode(Handle* handle, int mode) {
    if (!live(handle)) return NOT_INITIALIZED;
    if (mode < 0 || mode > 0x1f) return INVALID_VALUE;
    handle->math_mode = mode;
    return SUCCESS;
}

EXPORT int cublasGetMathMode(Handle* handle, int* mode) {
    if (!live(handle)) return NOT_INITIALIZED;
    if (!mode) return INVALID_VALUE;
    *mode = handle->math_mode;
    return SUCCESS;
}

EXPORT int cublasGemmEx(Handle* handle, int transa, int transb, int m, int n, int k, const float* alpha, uintptr_t a, int type_a, int lda,
                        uintptr_t b, int type_b, int ldb, const float* beta, uintptr_t c, int type_c, int ldc, int compute, int algorithm) {
    if (!live(handle)) return NOT_INITIALIZED;
    if (transa == OpC) transa = OpT;  // real types: the conjugate transpose is the transpose
    if (transb == OpC) transb = OpT;
    if (transa < 0 || transa > 1 || transb < 0 || transb > 1 || m < 0 || n < 0 || k < 0 || !alpha || !beta) return INVALID_VALUE;
    if (lda < std::max(1, transa == OpN ? m : k) || ldb < std::max(1, transb == OpN ? k : n) || ldc < std::max(1, m)) return INVALID_VALUE;
    // fp32 compute (CUBLAS_COMPUTE_32F and its fast variants, or the legacy CUDA_R_32F), fp32 or matching 16-bit output.
    const bool compute_ok = compute == 68 || compute == 69 || compute == 74 || compute == 75 || compute == 77 || compute == 0;
    const bool types_ok = type_a == type_b && (type_a == R32F || type_a == R16F || type_a == R16BF) && (type_c == R32F || type_c == type_a);
    if (!compute_ok || !types_ok || algorithm < -1 || algorithm > 115) return NOT_SUPPORTED;
    if (m == 0 || n == 0) return SUCCESS;
    Gemm g{transa, transb, m, n, k, *alpha, *beta, a, b, c, type_a, type_b, type_c, lda, ldb, ldc};
    const int status = bridge::enqueue(handle->stream, "cublasGemmEx", [g](std::string& error) { return g.run(error); });
    return status == 0 ? SUCCESS : EXECUTION_FAILED;
}

// Present so that a call the emulator does not implement reports that, instead of a missing symbol.
EXPORT int cublasSgemm_v2(...) { return NOT_SUPPORTED; }
EXPORT int cublasHgemm(...) { return NOT_SUPPORTED; }
EXPORT int cublasGemmStridedBatchedEx(...) { return NOT_SUPPORTED; }
EXPORT int cublasGemmBatchedEx(...) { return NOT_SUPPORTED; }
EXPORT int cublasSgemmStridedBatched(...) { return NOT_SUPPORTED; }
EXPORT int cublasSetPointerMode_v2(Handle* handle, int mode) {
    if (!live(handle)) return NOT_INITIALIZED;
    return mode == 0 ? SUCCESS : NOT_SUPPORTED;  // only host pointers for alpha and beta
}
