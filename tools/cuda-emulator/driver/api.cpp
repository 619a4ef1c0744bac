// The CUDA driver API entry points the engine uses (and a few neighbours), on the emulated device.
// Semantics follow the real driver where the engine depends on them: the primary context is
// reference-counted and destroyed at its last release; calls that need a context fail with
// CUDA_ERROR_INVALID_CONTEXT when the calling thread has none current; a launch failure is sticky
// until the context is destroyed; while a thread captures a stream, calls that would synchronize or
// allocate fail with CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED and invalidate the capture.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <functional>
#include <unordered_map>

#include "emulator.h"

typedef int CUresult;
typedef int CUdevice;

namespace emu {

namespace {

std::recursive_mutex g_lock;
bool g_initialized = false;
Context g_primary;
thread_local std::vector<Context*> t_current;
thread_local std::vector<Stream*> t_capturing;  // streams this thread captures (thread-local capture mode)
thread_local std::string t_error_detail;  // about the calling thread's last failed call
std::unordered_map<std::string, long> g_counters;
std::map<size_t, std::vector<KernelImage>> g_parsed;  // PTX text hash -> parsed entries

// Live handles, so stale or foreign ones are refused instead of dereferenced.
std::set<void*> g_streams, g_events, g_modules, g_functions, g_graphs, g_execs;

uint64_t parse_bytes(const char* text, uint64_t fallback) {
    if (!text || !*text) return fallback;
    char* end = nullptr;
    const double v = strtod(text, &end);
    std::string unit = end ? end : "";
    for (auto& c : unit) c = (char)tolower(c);
    const double scale = unit == "" || unit == "b" ? 1 : unit == "k" || unit == "kib" ? 1024.0 : unit == "m" || unit == "mib" ? 1048576.0
                       : unit == "g" || unit == "gib" ? 1073741824.0 : unit == "t" || unit == "tib" ? 1099511627776.0 : unit == "kb" ? 1e3
                       : unit == "mb" ? 1e6 : unit == "gb" ? 1e9 : -1;
    if (scale < 0 || !(v > 0)) {
        fprintf(stderr, "gptjx CUDA emulator: GPTJX_CUDA_EMULATOR_MEMORY=%s is not a size (e.g. 80GiB, 512MiB); using the default\n", text);
        return fallback;
    }
    return (uint64_t)(v * scale);
}

Profile make_profile() {
    const char* name = getenv("GPTJX_CUDA_EMULATOR_PROFILE");
    const std::string p = name ? name : "a100";
    Profile r;
    if (p == "h100") r = {"NVIDIA H100 80GB HBM3 (emulated)", 9, 0, 132, 1980000, 2619000, 5120, 52428800, 49152, 232448, 233472, 80ull << 30};
    else if (p == "h200") r = {"NVIDIA H200 (emulated)", 9, 0, 132, 1980000, 3201000, 6144, 62914560, 49152, 232448, 233472, 143771ull << 20};
    else {
        if (p != "a100") fprintf(stderr, "gptjx CUDA emulator: unknown GPTJX_CUDA_EMULATOR_PROFILE '%s' (a100, h100, h200); using a100\n", p.c_str());
        r = {"NVIDIA A100-SXM4-80GB (emulated)", 8, 0, 108, 1410000, 1593000, 5120, 41943040, 49152, 166912, 167936, 80ull << 30};
    }
    r.memory_bytes = parse_bytes(getenv("GPTJX_CUDA_EMULATOR_MEMORY"), r.memory_bytes);
    return r;
}

bool capturing_thread() { return !t_capturing.empty(); }

// A call that would synchronize or allocate while this thread captures: invalidates its captures.
int refuse_during_capture() {
    for (Stream* s : t_capturing) s->capture_invalidated = true;
    return STREAM_CAPTURE_UNSUPPORTED;
}

void destroy(Context& c) {
    flush(c);
    for (Stream* s : c.streams) { g_streams.erase(s); delete s; }
    for (Event* e : c.events) { g_events.erase(e); delete e; }
    for (Module* m : c.modules) {
        for (auto& [n, f] : m->functions) g_functions.erase(f.get());
        g_modules.erase(m);
        delete m;
    }
    for (Graph* g : c.graphs) { g_graphs.erase(g); delete g; }
    for (Graph* g : c.execs) { g_execs.erase(g); delete g; }
    c.streams.clear(); c.events.clear(); c.modules.clear(); c.graphs.clear(); c.execs.clear();
    release_all(c);
    c.queue.clear();
    c.default_stream.reset();
    c.alive = false;
    c.sticky = SUCCESS;
    c.sticky_message.clear();
    count("primary_context_destroyed");
}

template <typename T>
bool live(const std::set<void*>& set, T* handle) { return handle && set.count(static_cast<void*>(handle)); }

const char* error_name(int code) {
    switch (code) {
        case SUCCESS: return "CUDA_SUCCESS";
        case INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
        case OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
        case NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
        case NO_DEVICE: return "CUDA_ERROR_NO_DEVICE";
        case INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
        case INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
        case INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
        case INVALID_PTX: return "CUDA_ERROR_INVALID_PTX";
        case INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
        case 401: return "CUDA_ERROR_ILLEGAL_STATE";
        case NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
        case NOT_READY: return "CUDA_ERROR_NOT_READY";
        case ILLEGAL_ADDRESS: return "CUDA_ERROR_ILLEGAL_ADDRESS";
        case LAUNCH_OUT_OF_RESOURCES: return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
        case CONTEXT_IS_DESTROYED: return "CUDA_ERROR_CONTEXT_IS_DESTROYED";
        case ASSERT_FAILED: return "CUDA_ERROR_ASSERT";
        case MISALIGNED_ADDRESS: return "CUDA_ERROR_MISALIGNED_ADDRESS";
        case LAUNCH_FAILED: return "CUDA_ERROR_LAUNCH_FAILED";
        case NOT_SUPPORTED: return "CUDA_ERROR_NOT_SUPPORTED";
        case STREAM_CAPTURE_UNSUPPORTED: return "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED";
        case STREAM_CAPTURE_INVALIDATED: return "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED";
        case STREAM_CAPTURE_UNMATCHED: return "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED";
        case STREAM_CAPTURE_WRONG_THREAD: return "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD";
        case UNKNOWN: return "CUDA_ERROR_UNKNOWN";
        default: return nullptr;
    }
}

const char* error_text(int code) {
    switch (code) {
        case SUCCESS: return "no error";
        case INVALID_VALUE: return "invalid argument";
        case OUT_OF_MEMORY: return "out of memory";
        case NOT_INITIALIZED: return "initialization error";
        case NO_DEVICE: return "no CUDA-capable device is detected";
        case INVALID_DEVICE: return "invalid device ordinal";
        case INVALID_IMAGE: return "device kernel image is invalid";
        case INVALID_CONTEXT: return "invalid device context";
        case INVALID_PTX: return "a PTX JIT compilation failed";
        case INVALID_HANDLE: return "invalid resource handle";
        case 401: return "the operation cannot be performed in the present state";
        case NOT_FOUND: return "named symbol not found";
        case NOT_READY: return "device not ready";
        case ILLEGAL_ADDRESS: return "an illegal memory access was encountered";
        case LAUNCH_OUT_OF_RESOURCES: return "too many resources requested for launch";
        case CONTEXT_IS_DESTROYED: return "context is destroyed";
        case ASSERT_FAILED: return "device-side assert triggered";
        case MISALIGNED_ADDRESS: return "misaligned address";
        case LAUNCH_FAILED: return "unspecified launch failure";
        case NOT_SUPPORTED: return "operation not supported";
        case STREAM_CAPTURE_UNSUPPORTED: return "operation not permitted when stream is capturing";
        case STREAM_CAPTURE_INVALIDATED: return "operation failed due to a previous error during capture";
        case STREAM_CAPTURE_UNMATCHED: return "capture was not initiated in this stream";
        case STREAM_CAPTURE_WRONG_THREAD: return "attempt to terminate a thread-local capture sequence from another thread";
        case UNKNOWN: return "unknown error";
        default: return nullptr;
    }
}

}  // namespace

std::recursive_mutex& lock() { return g_lock; }
Context& primary() { return g_primary; }
bool initialized() { return g_initialized; }
void set_error_detail(const std::string& message) { t_error_detail = message; }
void count(const char* counter, long delta) { g_counters[counter] += delta; }

const Profile& profile() {
    static const Profile p = make_profile();
    return p;
}

CheckMode check_mode() {
    static const CheckMode mode = [] {
        const char* v = getenv("GPTJX_CUDA_EMULATOR_CHECK");
        if (v && (!strcmp(v, "fast") || !strcmp(v, "0"))) return CheckFast;
        if (v && *v && strcmp(v, "full") && strcmp(v, "1"))
            fprintf(stderr, "gptjx CUDA emulator: GPTJX_CUDA_EMULATOR_CHECK=%s is not full or fast; using full\n", v);
        return CheckFull;
    }();
    return mode;
}

int current(Context*& context) {
    if (!g_initialized) return NOT_INITIALIZED;
    if (t_current.empty() || !t_current.back()) return INVALID_CONTEXT;
    context = t_current.back();
    if (!context->alive) return CONTEXT_IS_DESTROYED;
    if (context->sticky != SUCCESS) t_error_detail = "an earlier launch failed: " + context->sticky_message;
    return context->sticky;
}

int stream_of(Context& context, void* handle, Stream*& stream) {
    if (!handle) {
        stream = context.default_stream.get();
        return SUCCESS;
    }
    auto* s = static_cast<Stream*>(handle);
    if (!live(g_streams, s) || s->context != &context) return INVALID_HANDLE;
    stream = s;
    return SUCCESS;
}

}  // namespace emu

using namespace emu;

#define EXPORT extern "C" __attribute__((visibility("default")))
// Every entry point holds the driver lock and forgets the calling thread's previous error detail.
#define LOCKED                                                \
    std::lock_guard<std::recursive_mutex> guard(emu::lock()); \
    emu::set_error_detail("")
#define CONTEXT                                    \
    Context* ctx = nullptr;                        \
    if (int status_ = current(ctx)) return status_

// ---- initialization, errors, devices ---------------------------------------------------------

EXPORT CUresult cuInit(unsigned flags) {
    LOCKED;
    if (flags != 0) return INVALID_VALUE;
    if (g_initialized) return SUCCESS;
    std::string error;
    if (!load_kernel_library(error)) {
        set_error_detail(error);
        fprintf(stderr, "gptjx CUDA emulator: %s\n", error.c_str());
        return NOT_INITIALIZED;
    }
    g_initialized = true;
    return SUCCESS;
}

EXPORT CUresult cuDriverGetVersion(int* version) {
    if (!version) return INVALID_VALUE;
    *version = 12080;
    return SUCCESS;
}

EXPORT CUresult cuGetErrorName(CUresult error, const char** name) {
    if (!name) return INVALID_VALUE;
    *name = error_name(error);
    return *name ? SUCCESS : INVALID_VALUE;
}

EXPORT CUresult cuGetErrorString(CUresult error, const char** text) {
    if (!text) return INVALID_VALUE;
    *text = error_text(error);
    return *text ? SUCCESS : INVALID_VALUE;
}

EXPORT CUresult cuDeviceGetCount(int* count) {
    LOCKED;
    if (!count) return INVALID_VALUE;
    if (!g_initialized) return NOT_INITIALIZED;
    *count = 1;
    return SUCCESS;
}

EXPORT CUresult cuDeviceGet(CUdevice* device, int ordinal) {
    LOCKED;
    if (!device) return INVALID_VALUE;
    if (!g_initialized) return NOT_INITIALIZED;
    if (ordinal != 0) return INVALID_DEVICE;
    *device = 0;
    return SUCCESS;
}

EXPORT CUresult cuDeviceGetName(char* name, int length, CUdevice device) {
    LOCKED;
    if (!g_initialized) return NOT_INITIALIZED;
    if (device != 0) return INVALID_DEVICE;
    if (!name || length <= 0) return INVALID_VALUE;
    snprintf(name, (size_t)length, "%s", profile().name.c_str());
    return SUCCESS;
}

EXPORT CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice device) {
    LOCKED;
    if (!g_initialized) return NOT_INITIALIZED;
    if (device != 0) return INVALID_DEVICE;
    if (!bytes) return INVALID_VALUE;
    *bytes = profile().memory_bytes;
    return SUCCESS;
}

EXPORT CUresult cuDeviceGetAttribute(int* value, int attribute, CUdevice device) {
    LOCKED;
    if (!g_initialized) return NOT_INITIALIZED;
    if (device != 0) return INVALID_DEVICE;
    if (!value) return INVALID_VALUE;
    const Profile& p = profile();
    switch (attribute) {
        case 1: *value = 1024; break;                          // MAX_THREADS_PER_BLOCK
        case 2: case 3: *value = 1024; break;                  // MAX_BLOCK_DIM_X/Y
        case 4: *value = 64; break;                            // MAX_BLOCK_DIM_Z
        case 5: *value = 2147483647; break;                    // MAX_GRID_DIM_X
        case 6: case 7: *value = 65535; break;                 // MAX_GRID_DIM_Y/Z
        case 8: *value = p.shared_per_block; break;            // MAX_SHARED_MEMORY_PER_BLOCK
        case 9: *value = 65536; break;                         // TOTAL_CONSTANT_MEMORY
        case 10: *value = 32; break;                           // WARP_SIZE
        case 12: case 82: *value = 65536; break;               // MAX_REGISTERS_PER_BLOCK / _MULTIPROCESSOR
        case 13: *value = p.clock_khz; break;                  // CLOCK_RATE
        case 16: *value = p.multiprocessors; break;            // MULTIPROCESSOR_COUNT
        case 19: case 31: case 41: *value = 1; break;          // CAN_MAP_HOST_MEMORY, CONCURRENT_KERNELS, UNIFIED_ADDRESSING
        case 36: *value = p.memory_clock_khz; break;           // MEMORY_CLOCK_RATE
        case 37: *value = p.bus_width; break;                  // GLOBAL_MEMORY_BUS_WIDTH
        case 38: *value = p.l2_bytes; break;                   // L2_CACHE_SIZE
        case 39: *value = 2048; break;                         // MAX_THREADS_PER_MULTIPROCESSOR
        case 75: *value = p.major; break;                      // COMPUTE_CAPABILITY_MAJOR
        case 76: *value = p.minor; break;                      // COMPUTE_CAPABILITY_MINOR
        case 81: *value = p.shared_per_multiprocessor; break;  // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
        case 97: *value = p.shared_per_block_optin; break;     // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        default:
            if (attribute < 1 || attribute > 140) return INVALID_VALUE;
            *value = 0;
    }
    return SUCCESS;
}

// ---- contexts ---------------------------------------------------------------------------------

EXPORT CUresult cuDevicePrimaryCtxRetain(Context** context, CUdevice device) {
    LOCKED;
    if (!g_initialized) return NOT_INITIALIZED;
    if (device != 0) return INVALID_DEVICE;
    if (!context) return INVALID_VALUE;
    Context& c = g_primary;
    if (c.refcount++ == 0) {
        c.alive = true;
        c.generation++;
        c.default_stream = std::make_unique<Stream>();
        c.default_stream->context = &c;
        count("primary_context_created");
    }
    count("primary_context_retained");
    *context = &c;
    return SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice device) {
    LOCKED;
    if (!g_initialized) return NOT_INITIALIZED;
    if (device != 0) return INVALID_DEVICE;
    Context& c = g_primary;
    if (c.refcount == 0) return INVALID_CONTEXT;
    if (--c.refcount == 0) destroy(c);
    return SUCCESS;
}

EXPORT CUresult cuDevicePrimaryCtxGetState(CUdevice device, unsigned* flags, int* active) {
    LOCKED;
    if (!g_initialized) return NOT_INITIALIZED;
    if (device != 0) return INVALID_DEVICE;
    if (flags) *flags = 0;
    if (active) *active = g_primary.alive ? 1 : 0;
    return SUCCESS;
}

EXPORT CUresult cuCtxPushCurrent_v2(Context* context) {
    LOCKED;
    if (!g_initialized) return NOT_INITIALIZED;
    if (context != &g_primary || !context->alive) return INVALID_CONTEXT;
    t_current.push_back(context);
    return SUCCESS;
}

EXPORT CUresult cuCtxPopCurrent_v2(Context** context) {
    LOCKED;
    if (!g_initialized) return NOT_INITIALIZED;
    if (t_current.empty()) return INVALID_CONTEXT;
    if (context) *context = t_current.back();
    t_current.pop_back();
    return SUCCESS;
}

EXPORT CUresult cuCtxGetCurrent(Context** context) {
    LOCKED;
    if (!g_initialized) return NOT_INITIALIZED;
    if (!context) return INVALID_VALUE;
    *context = t_current.empty() ? nullptr : t_current.back();
    return SUCCESS;
}

EXPORT CUresult cuCtxSetCurrent(Context* context) {
    LOCKED;
    if (!g_initialized) return NOT_INITIALIZED;
    if (context && (context != &g_primary || !context->alive)) return INVALID_CONTEXT;
    if (!t_current.empty()) t_current.pop_back();
    if (context) t_current.push_back(context);
    return SUCCESS;
}

EXPORT CUresult cuCtxGetDevice(CUdevice* device) {
    LOCKED;
    CONTEXT;
    if (!device) return INVALID_VALUE;
    *device = 0;
    return SUCCESS;
}

EXPORT CUresult cuCtxSynchronize() {
    LOCKED;
    CONTEXT;
    if (capturing_thread()) return refuse_during_capture();
    return flush(*ctx);
}

// ---- memory -----------------------------------------------------------------------------------

EXPORT CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total_bytes) {
    LOCKED;
    CONTEXT;
    if (!free_bytes || !total_bytes) return INVALID_VALUE;
    *total_bytes = profile().memory_bytes;
    *free_bytes = profile().memory_bytes - ctx->used_bytes;
    return SUCCESS;
}

EXPORT CUresult cuMemAlloc_v2(uintptr_t* pointer, size_t bytes) {
    LOCKED;
    CONTEXT;
    if (!pointer) return INVALID_VALUE;
    if (capturing_thread()) return refuse_during_capture();
    return allocate(*ctx, bytes, false, *pointer);
}

EXPORT CUresult cuMemFree_v2(uintptr_t pointer) {
    LOCKED;
    CONTEXT;
    if (capturing_thread()) return refuse_during_capture();
    if (pointer == 0) return SUCCESS;
    if (int status = flush(*ctx)) return status;  // freeing waits for the work that may use the memory
    return release(*ctx, pointer, false);
}

EXPORT CUresult cuMemAllocHost_v2(void** pointer, size_t bytes) {
    LOCKED;
    CONTEXT;
    if (!pointer) return INVALID_VALUE;
    if (capturing_thread()) return refuse_during_capture();
    uintptr_t p = 0;
    const int status = allocate(*ctx, bytes, true, p);
    *pointer = reinterpret_cast<void*>(p);
    return status;
}

EXPORT CUresult cuMemFreeHost(void* pointer) {
    LOCKED;
    CONTEXT;
    if (capturing_thread()) return refuse_during_capture();
    if (int status = flush(*ctx)) return status;
    return release(*ctx, reinterpret_cast<uintptr_t>(pointer), true);
}

namespace {

bool device_range(uintptr_t p, size_t bytes) {
    const Allocation* a = find_range(p, bytes);
    return a && !a->pinned;
}

bool pinned_range(uintptr_t p, size_t bytes) {
    const Allocation* a = find_range(p, bytes);
    return a && a->pinned;
}

CUresult copy(const char* what, Work::Kind kind, uintptr_t destination, uintptr_t source, size_t bytes, void* stream_handle, bool wait) {
    CONTEXT;
    Stream* stream;
    if (int s = stream_of(*ctx, stream_handle, stream)) return s;
    if (bytes == 0) return SUCCESS;
    Work w;
    w.kind = kind;
    w.what = what;
    w.destination = destination;
    w.source = source;
    w.bytes = bytes;
    if (kind == Work::CopyToDevice || kind == Work::CopyOnDevice) {
        if (!device_range(destination, bytes)) return INVALID_VALUE;
    }
    if (kind == Work::CopyToHost || kind == Work::CopyOnDevice) {
        if (!device_range(source, bytes)) return INVALID_VALUE;
    }
    if (kind == Work::CopyToDevice && !pinned_range(source, bytes)) {
        // Pageable source: the driver stages it before returning, so the caller may reuse it.
        if (stream->capturing || capturing_thread()) return refuse_during_capture();
        w.staged = std::make_shared<std::vector<uint8_t>>(reinterpret_cast<const uint8_t*>(source), reinterpret_cast<const uint8_t*>(source) + bytes);
    }
    if (kind == Work::CopyToHost && !pinned_range(destination, bytes)) {
        // Pageable destination: the copy completes before the call returns.
        if (stream->capturing || capturing_thread()) return refuse_during_capture();
        if (int s = flush(*ctx)) return s;
        memcpy(reinterpret_cast<void*>(destination), reinterpret_cast<const void*>(source), bytes);
        return SUCCESS;
    }
    if (int s = enqueue(*ctx, *stream, std::move(w))) return s;
    return wait ? flush(*ctx) : SUCCESS;
}

}  // namespace

EXPORT CUresult cuMemcpyHtoDAsync_v2(uintptr_t dst, const void* src, size_t bytes, void* stream) {
    LOCKED;
    return copy("cuMemcpyHtoDAsync", Work::CopyToDevice, dst, reinterpret_cast<uintptr_t>(src), bytes, stream, false);
}
EXPORT CUresult cuMemcpyDtoHAsync_v2(void* dst, uintptr_t src, size_t bytes, void* stream) {
    LOCKED;
    return copy("cuMemcpyDtoHAsync", Work::CopyToHost, reinterpret_cast<uintptr_t>(dst), src, bytes, stream, false);
}
EXPORT CUresult cuMemcpyDtoDAsync_v2(uintptr_t dst, uintptr_t src, size_t bytes, void* stream) {
    LOCKED;
    return copy("cuMemcpyDtoDAsync", Work::CopyOnDevice, dst, src, bytes, stream, false);
}
EXPORT CUresult cuMemcpyHtoD_v2(uintptr_t dst, const void* src, size_t bytes) {
    LOCKED;
    if (capturing_thread()) return refuse_during_capture();
    return copy("cuMemcpyHtoD", Work::CopyToDevice, dst, reinterpret_cast<uintptr_t>(src), bytes, nullptr, true);
}
EXPORT CUresult cuMemcpyDtoH_v2(void* dst, uintptr_t src, size_t bytes) {
    LOCKED;
    if (capturing_thread()) return refuse_during_capture();
    return copy("cuMemcpyDtoH", Work::CopyToHost, reinterpret_cast<uintptr_t>(dst), src, bytes, nullptr, true);
}

EXPORT CUresult cuMemsetD8Async(uintptr_t dst, unsigned char value, size_t count, void* stream_handle) {
    LOCKED;
    CONTEXT;
    Stream* stream;
    if (int s = stream_of(*ctx, stream_handle, stream)) return s;
    if (count == 0) return SUCCESS;
    if (!device_range(dst, count)) return INVALID_VALUE;
    Work w;
    w.kind = Work::Memset;
    w.what = "cuMemsetD8Async";
    w.destination = dst;
    w.bytes = count;
    w.value = value;
    return enqueue(*ctx, *stream, std::move(w));
}

// ---- streams and events ---------------------------------------------------------------------------

EXPORT CUresult cuStreamCreate(Stream** stream, unsigned flags) {
    LOCKED;
    CONTEXT;
    if (!stream || flags > 1) return INVALID_VALUE;
    auto* s = new Stream();
    s->context = ctx;
    ctx->streams.insert(s);
    g_streams.insert(s);
    *stream = s;
    return SUCCESS;
}

EXPORT CUresult cuStreamDestroy_v2(Stream* stream) {
    LOCKED;
    CONTEXT;
    if (!live(g_streams, stream) || stream->context != ctx) return INVALID_HANDLE;
    if (stream->capturing) return 401;  // CUDA_ERROR_ILLEGAL_STATE
    // Work already queued still runs (it is in the context's queue); the handle dies now.
    g_streams.erase(stream);
    ctx->streams.erase(stream);
    delete stream;
    return SUCCESS;
}

EXPORT CUresult cuStreamSynchronize(Stream* handle) {
    LOCKED;
    CONTEXT;
    Stream* stream;
    if (int s = stream_of(*ctx, handle, stream)) return s;
    if (stream->capturing || capturing_thread()) return refuse_during_capture();
    return flush(*ctx);
}

EXPORT CUresult cuStreamQuery(Stream* handle) {
    LOCKED;
    CONTEXT;
    Stream* stream;
    if (int s = stream_of(*ctx, handle, stream)) return s;
    if (stream->capturing || capturing_thread()) return refuse_during_capture();
    return flush(*ctx);
}

EXPORT CUresult cuEventCreate(Event** event, unsigned flags) {
    LOCKED;
    CONTEXT;
    if (!event || (flags & ~7u)) return INVALID_VALUE;
    auto* e = new Event();
    e->context = ctx;
    e->timing = !(flags & 2u);  // CU_EVENT_DISABLE_TIMING
    ctx->events.insert(e);
    g_events.insert(e);
    *event = e;
    return SUCCESS;
}

EXPORT CUresult cuEventDestroy_v2(Event* event) {
    LOCKED;
    CONTEXT;
    if (!live(g_events, event) || event->context != ctx) return INVALID_HANDLE;
    if (event->pending) flush(*ctx);  // queued records point at the event
    g_events.erase(event);
    ctx->events.erase(event);
    delete event;
    return SUCCESS;
}

EXPORT CUresult cuEventRecord(Event* event, Stream* handle) {
    LOCKED;
    CONTEXT;
    if (!live(g_events, event) || event->context != ctx) return INVALID_HANDLE;
    Stream* stream;
    if (int s = stream_of(*ctx, handle, stream)) return s;
    Work w;
    w.kind = Work::RecordEvent;
    w.what = "cuEventRecord";
    w.event = event;
    return enqueue(*ctx, *stream, std::move(w));
}

EXPORT CUresult cuEventSynchronize(Event* event) {
    LOCKED;
    CONTEXT;
    if (!live(g_events, event) || event->context != ctx) return INVALID_HANDLE;
    if (capturing_thread()) return refuse_during_capture();
    return event->pending ? flush(*ctx) : SUCCESS;
}

EXPORT CUresult cuEventQuery(Event* event) {
    LOCKED;
    CONTEXT;
    if (!live(g_events, event) || event->context != ctx) return INVALID_HANDLE;
    if (capturing_thread()) return refuse_during_capture();
    return event->pending ? flush(*ctx) : SUCCESS;
}

EXPORT CUresult cuEventElapsedTime(float* milliseconds, Event* start, Event* end) {
    LOCKED;
    CONTEXT;
    if (!milliseconds) return INVALID_VALUE;
    if (!live(g_events, start) || !live(g_events, end) || !start->timing || !end->timing) return INVALID_HANDLE;
    if (start->pending || end->pending || !start->recorded || !end->recorded) return NOT_READY;
    *milliseconds = (float)(end->milliseconds - start->milliseconds);
    return SUCCESS;
}

// ---- modules and launches ---------------------------------------------------------------------------

namespace {

void write_log(unsigned count, const int* options, void** values, int buffer_option, int size_option, const std::string& text) {
    char* buffer = nullptr;
    size_t size = 0;
    for (unsigned i = 0; i < count; ++i) {
        if (options[i] == buffer_option) buffer = static_cast<char*>(values[i]);
        if (options[i] == size_option) size = reinterpret_cast<uintptr_t>(values[i]);
    }
    if (buffer && size) snprintf(buffer, size, "%s", text.c_str());
}

}  // namespace

EXPORT CUresult cuModuleLoadDataEx(Module** module, const void* image, unsigned count, int* options, void** values) {
    LOCKED;
    CONTEXT;
    if (!module || !image || (count && (!options || !values))) return INVALID_VALUE;
    const auto* bytes = static_cast<const unsigned char*>(image);
    if ((bytes[0] == 0x7f && bytes[1] == 'E') || (bytes[0] == 0x50 && bytes[1] == 0xed)) {
        write_log(count, options, values, 5, 6, "the emulated device runs PTX modules only, not cubin or fatbin images");
        return INVALID_IMAGE;
    }
    const char* text = static_cast<const char*>(image);
    const size_t key = std::hash<std::string_view>{}(std::string_view(text));
    auto cached = g_parsed.find(key);
    if (cached == g_parsed.end()) {
        std::vector<KernelImage> kernels;
        std::string error;
        if (int status = parse_ptx(text, kernels, error)) {
            write_log(count, options, values, 5, 6, error);
            set_error_detail(error);
            return status;
        }
        cached = g_parsed.emplace(key, std::move(kernels)).first;
    }
    auto* m = new Module();
    m->context = ctx;
    for (const KernelImage& k : cached->second) {
        const gptjx_emu_kernel* host = host_kernel(k.name);
        if (!host) {
            const std::string error = "entry " + k.name + " has no host build in the emulator's kernel library (rebuild it with tools/cuda-emulator/build.sh)";
            write_log(count, options, values, 5, 6, error);
            set_error_detail(error);
            delete m;
            return INVALID_PTX;
        }
        auto f = std::make_unique<Function>();
        f->image = k;
        f->image.host = host;
        f->module = m;
        g_functions.insert(f.get());
        m->functions[k.name] = std::move(f);
    }
    write_log(count, options, values, 3, 4, "emulated JIT: " + std::to_string(m->functions.size()) + " entries bound to host kernels");
    ctx->modules.insert(m);
    g_modules.insert(m);
    *module = m;
    return SUCCESS;
}

EXPORT CUresult cuModuleLoadData(Module** module, const void* image) { return cuModuleLoadDataEx(module, image, 0, nullptr, nullptr); }

EXPORT CUresult cuModuleUnload(Module* module) {
    LOCKED;
    CONTEXT;
    if (!live(g_modules, module) || module->context != ctx) return INVALID_HANDLE;
    if (int s = flush(*ctx)) return s;
    for (auto& [n, f] : module->functions) g_functions.erase(f.get());
    g_modules.erase(module);
    ctx->modules.erase(module);
    delete module;
    return SUCCESS;
}

EXPORT CUresult cuModuleGetFunction(Function** function, Module* module, const char* name) {
    LOCKED;
    CONTEXT;
    if (!function || !name) return INVALID_VALUE;
    if (!live(g_modules, module)) return INVALID_HANDLE;
    auto it = module->functions.find(name);
    if (it == module->functions.end()) return NOT_FOUND;
    *function = it->second.get();
    return SUCCESS;
}

EXPORT CUresult cuFuncSetAttribute(Function* function, int attribute, int value) {
    LOCKED;
    CONTEXT;
    if (!live(g_functions, function)) return INVALID_HANDLE;
    if (attribute == 8) {  // MAX_DYNAMIC_SHARED_SIZE_BYTES
        if (value < 0 || (unsigned)value + function->image.static_shared > (unsigned)profile().shared_per_block_optin) return INVALID_VALUE;
        function->max_dynamic_shared = (unsigned)value;
    }
    return SUCCESS;
}

EXPORT CUresult cuFuncGetAttribute(int* value, int attribute, Function* function) {
    LOCKED;
    CONTEXT;
    if (!value) return INVALID_VALUE;
    if (!live(g_functions, function)) return INVALID_HANDLE;
    switch (attribute) {
        case 0: *value = function->image.max_threads ? (int)function->image.max_threads : 1024; break;
        case 1: *value = (int)function->image.static_shared; break;
        case 4: *value = 32; break;
        case 5: *value = 78; break;
        case 6: *value = profile().major * 10 + profile().minor; break;
        case 8: *value = (int)function->max_dynamic_shared; break;
        default: *value = 0;
    }
    return SUCCESS;
}

EXPORT CUresult cuLaunchKernel(Function* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                               unsigned shared, Stream* handle, void** params, void** extra) {
    LOCKED;
    CONTEXT;
    if (!live(g_functions, f)) return INVALID_HANDLE;
    Stream* stream;
    if (int s = stream_of(*ctx, handle, stream)) return s;
    const KernelImage& k = f->image;
    auto refuse = [&](int code, const std::string& why) {
        set_error_detail(k.name + ": " + why);
        return code;
    };
    if (!gx || !gy || !gz || !bx || !by || !bz || gy > 65535 || gz > 65535 || gx > 2147483647u)
        return refuse(INVALID_VALUE, "grid (" + std::to_string(gx) + ", " + std::to_string(gy) + ", " + std::to_string(gz) + ") out of range");
    const unsigned long threads = (unsigned long)bx * by * bz;
    if (bx > 1024 || by > 1024 || bz > 64 || threads > 1024)
        return refuse(INVALID_VALUE, "block (" + std::to_string(bx) + ", " + std::to_string(by) + ", " + std::to_string(bz) + ") has more than 1024 threads");
    if (k.max_threads && threads > k.max_threads)
        return refuse(LAUNCH_OUT_OF_RESOURCES, std::to_string(threads) + " threads exceed the kernel's launch bound of " + std::to_string(k.max_threads));
    if (shared > f->max_dynamic_shared)
        return refuse(INVALID_VALUE, std::to_string(shared) + " bytes of dynamic shared memory exceed the " + std::to_string(f->max_dynamic_shared) +
                                         " allowed (raise CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)");
    if (shared + k.static_shared > (unsigned)profile().shared_per_block_optin)
        return refuse(INVALID_VALUE, "shared memory exceeds the device's per-block limit");
    // The parameters, packed by the PTX layout, must match the host build's C++ signature.
    const gptjx_emu_kernel* host = k.host;
    if ((int)k.params.size() != host->param_count)
        return refuse(INVALID_VALUE, "the PTX declares " + std::to_string(k.params.size()) + " parameters; the kernel's C++ signature has " +
                                         std::to_string(host->param_count));
    Work w;
    w.kind = Work::Kernel;
    w.what = k.name;
    w.function = f;
    w.grid = {gx, gy, gz};
    w.block = {bx, by, bz};
    w.dynamic_shared = shared;
    size_t offset = 0;
    for (size_t i = 0; i < k.params.size(); ++i) {
        if (k.params[i].size != host->param_sizes[i])
            return refuse(INVALID_VALUE, "parameter " + std::to_string(i) + " is " + std::to_string(k.params[i].size) + " bytes in the PTX but " +
                                             std::to_string(host->param_sizes[i]) + " bytes in the kernel's C++ signature");
        offset = (offset + k.params[i].align - 1) / k.params[i].align * k.params[i].align;
        w.param_offsets.push_back(offset);
        offset += k.params[i].size;
    }
    w.params.resize(offset + 16);
    if (extra) {
        // CU_LAUNCH_PARAM_BUFFER_POINTER (1), CU_LAUNCH_PARAM_BUFFER_SIZE (2), CU_LAUNCH_PARAM_END (0)
        const void* buffer = nullptr;
        size_t size = 0;
        for (void** e = extra; *e; e += 2) {
            if (*e == reinterpret_cast<void*>(1)) buffer = e[1];
            else if (*e == reinterpret_cast<void*>(2)) size = *static_cast<size_t*>(e[1]);
        }
        if (params || !buffer || size != offset) return refuse(INVALID_VALUE, "the parameter buffer is " + std::to_string(size) + " bytes; the kernel takes " + std::to_string(offset));
        memcpy(w.params.data(), buffer, size);
    } else {
        if (!params && !k.params.empty()) return refuse(INVALID_VALUE, "no kernel parameters given");
        for (size_t i = 0; i < k.params.size(); ++i) memcpy(w.params.data() + w.param_offsets[i], params[i], k.params[i].size);
    }
    count("kernel_launches");
    return enqueue(*ctx, *stream, std::move(w));
}

// ---- graphs ------------------------------------------------------------------------------------------

EXPORT CUresult cuStreamBeginCapture_v2(Stream* handle, int mode) {
    LOCKED;
    CONTEXT;
    if (!handle) return STREAM_CAPTURE_UNSUPPORTED;  // the legacy default stream cannot be captured
    Stream* stream;
    if (int s = stream_of(*ctx, handle, stream)) return s;
    if (mode < 0 || mode > 2) return INVALID_VALUE;
    if (stream->capturing) return 401;
    stream->capturing = true;
    stream->capture_invalidated = false;
    stream->captured.clear();
    t_capturing.push_back(stream);
    return SUCCESS;
}

EXPORT CUresult cuStreamEndCapture(Stream* handle, Graph** graph) {
    LOCKED;
    CONTEXT;
    if (!graph) return INVALID_VALUE;
    Stream* stream;
    if (int s = stream_of(*ctx, handle, stream)) return s;
    if (!stream->capturing) return 401;
    auto mine = std::find(t_capturing.begin(), t_capturing.end(), stream);
    if (mine == t_capturing.end()) return STREAM_CAPTURE_WRONG_THREAD;
    t_capturing.erase(mine);
    stream->capturing = false;
    *graph = nullptr;
    if (stream->capture_invalidated) {
        stream->captured.clear();
        return STREAM_CAPTURE_INVALIDATED;
    }
    auto* g = new Graph();
    g->context = ctx;
    g->nodes = std::move(stream->captured);
    stream->captured.clear();
    ctx->graphs.insert(g);
    g_graphs.insert(g);
    *graph = g;
    return SUCCESS;
}

EXPORT CUresult cuStreamIsCapturing(Stream* handle, int* status) {
    LOCKED;
    CONTEXT;
    Stream* stream;
    if (int s = stream_of(*ctx, handle, stream)) return s;
    if (!status) return INVALID_VALUE;
    *status = stream->capturing ? (stream->capture_invalidated ? 2 : 1) : 0;
    return SUCCESS;
}

EXPORT CUresult cuGraphInstantiateWithFlags(Graph** exec, Graph* graph, unsigned long long flags) {
    LOCKED;
    CONTEXT;
    if (!exec || flags) return INVALID_VALUE;
    if (!live(g_graphs, graph)) return INVALID_HANDLE;
    auto* e = new Graph(*graph);
    ctx->execs.insert(e);
    g_execs.insert(e);
    *exec = e;
    return SUCCESS;
}

EXPORT CUresult cuGraphLaunch(Graph* exec, Stream* handle) {
    LOCKED;
    CONTEXT;
    if (!live(g_execs, exec)) return INVALID_HANDLE;
    Stream* stream;
    if (int s = stream_of(*ctx, handle, stream)) return s;
    if (stream->capturing) return refuse_during_capture();
    for (const Work& w : exec->nodes) {
        if (w.kind == Work::Kernel && !live(g_functions, w.function)) return INVALID_HANDLE;  // its module was unloaded
        if (w.kind == Work::RecordEvent && !live(g_events, w.event)) return INVALID_HANDLE;
        enqueue(*ctx, *stream, w);
    }
    count("graph_launches");
    return SUCCESS;
}

EXPORT CUresult cuGraphDestroy(Graph* graph) {
    LOCKED;
    CONTEXT;
    if (!live(g_graphs, graph)) return INVALID_HANDLE;
    g_graphs.erase(graph);
    ctx->graphs.erase(graph);
    delete graph;
    return SUCCESS;
}

EXPORT CUresult cuGraphExecDestroy(Graph* exec) {
    LOCKED;
    CONTEXT;
    if (!live(g_execs, exec)) return INVALID_HANDLE;
    g_execs.erase(exec);
    ctx->execs.erase(exec);
    delete exec;
    return SUCCESS;
}

// ---- emulator extensions (not part of the CUDA driver API) ---------------------------------------------

// What the calling thread's last failed call was about, in words (the kernel, the address, the
// thread of a failed launch); "" when it said nothing more.
EXPORT const char* gptjx_emu_error_detail() { return t_error_detail.c_str(); }

// Counters for tests: primary_context_created / _retained / _destroyed, kernel_launches, launches,
// graph_launches, device_allocations, pinned_allocations; "primary_context_refcount" is the live count.
EXPORT long gptjx_emu_counter(const char* name) {
    LOCKED;
    if (!strcmp(name, "primary_context_refcount")) return g_primary.refcount;
    auto it = g_counters.find(name);
    return it == g_counters.end() ? 0 : it->second;
}

// ---- the bridge the emulated cuBLAS uses (found with dlsym, so it binds to this driver even where
// another libcuda.so.1 is loaded) ---------------------------------------------------------------------

EXPORT int gptjx_emu_bridge_current_context() {
    LOCKED;
    Context* ctx = nullptr;
    return current(ctx);
}

EXPORT int gptjx_emu_bridge_check_stream(void* handle) {
    LOCKED;
    CONTEXT;
    Stream* stream;
    return stream_of(*ctx, handle, stream);
}

EXPORT bool gptjx_emu_bridge_device_range(uintptr_t pointer, size_t bytes) {
    LOCKED;
    return device_range(pointer, bytes);
}

EXPORT void gptjx_emu_bridge_describe_address(uintptr_t pointer, std::string* out) {
    LOCKED;
    *out = describe_address(pointer);
}

EXPORT int gptjx_emu_bridge_enqueue(void* handle, const std::string* what, std::function<int(std::string&)>* work) {
    LOCKED;
    CONTEXT;
    Stream* stream;
    if (int s = stream_of(*ctx, handle, stream)) return s;
    Work w;
    w.kind = Work::Native;
    w.what = *what;
    w.native = std::move(*work);
    return enqueue(*ctx, *stream, std::move(w));
}
