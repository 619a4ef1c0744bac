// Internal state of the emulated CUDA driver. One device; every API call takes the global lock;
// queued device work runs on the thread that synchronizes (see queue.cpp), under that lock.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../device/emu_abi.h"

namespace emu {

// CUresult values the emulator returns (names and texts in api.cpp).
enum Result : int {
    SUCCESS = 0,
    INVALID_VALUE = 1,
    OUT_OF_MEMORY = 2,
    NOT_INITIALIZED = 3,
    NO_DEVICE = 100,
    INVALID_DEVICE = 101,
    INVALID_IMAGE = 200,
    INVALID_CONTEXT = 201,
    INVALID_PTX = 218,
    INVALID_HANDLE = 400,
    NOT_FOUND = 500,
    NOT_READY = 600,
    ILLEGAL_ADDRESS = 700,
    LAUNCH_OUT_OF_RESOURCES = 701,
    CONTEXT_IS_DESTROYED = 709,
    ASSERT_FAILED = 710,
    MISALIGNED_ADDRESS = 716,
    LAUNCH_FAILED = 719,
    NOT_SUPPORTED = 801,
    STREAM_CAPTURE_UNSUPPORTED = 900,
    STREAM_CAPTURE_INVALIDATED = 901,
    STREAM_CAPTURE_UNMATCHED = 903,
    STREAM_CAPTURE_WRONG_THREAD = 908,
    UNKNOWN = 999,
};

// ---- device profile --------------------------------------------------------------------
struct Profile {
    std::string name;
    int major, minor, multiprocessors, clock_khz, memory_clock_khz, bus_width, l2_bytes;
    int shared_per_block, shared_per_block_optin, shared_per_multiprocessor;
    uint64_t memory_bytes;
};
const Profile& profile();

enum CheckMode { CheckFast, CheckFull };
CheckMode check_mode();

// ---- objects ---------------------------------------------------------------------------
struct Context;
struct Stream;
struct Event;
struct Graph;

struct Allocation {
    uintptr_t base = 0;       // what the API returns
    size_t size = 0;
    uintptr_t map_base = 0;   // the mmap'ed region: guard page, lead-in, data, tail slack, guard page
    size_t map_size = 0;
    bool pinned = false;      // page-locked host memory (cuMemAllocHost) rather than device memory
    Context* context = nullptr;
    uint64_t id = 0;          // allocation number, for messages
};

struct PtxParam {
    unsigned size, align;
};

struct KernelImage {  // one .entry of a loaded module, bound to its host build
    std::string name;
    std::vector<PtxParam> params;
    unsigned static_shared = 0;
    unsigned max_threads = 0;  // .maxntid product, 0 when none
    const gptjx_emu_kernel* host = nullptr;
};

struct Function {
    KernelImage image;
    unsigned max_dynamic_shared = 48 * 1024;  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    struct Module* module = nullptr;
};

struct Module {
    Context* context = nullptr;
    std::map<std::string, std::unique_ptr<Function>> functions;
};

// One queued piece of device work.
struct Work {
    enum Kind { Kernel, CopyToDevice, CopyToHost, CopyOnDevice, Memset, RecordEvent, Native } kind;
    std::string what;                       // for messages: kernel or call name
    // Kernel
    Function* function = nullptr;
    gptjx_emu_dim grid{}, block{};
    unsigned dynamic_shared = 0;
    std::vector<uint8_t> params;            // packed by the PTX parameter layout
    std::vector<size_t> param_offsets;
    // Copies and memset
    uintptr_t destination = 0, source = 0;
    size_t bytes = 0;
    std::shared_ptr<std::vector<uint8_t>> staged;  // pageable source bytes, copied when queued
    uint8_t value = 0;
    // Events
    Event* event = nullptr;
    // Native work (the emulated cuBLAS): returns a CUresult, with a message on failure
    std::function<int(std::string& error)> native;
};

struct Stream {
    Context* context = nullptr;
    bool capturing = false;
    bool capture_invalidated = false;
    std::vector<Work> captured;
};

struct Event {
    Context* context = nullptr;
    bool timing = true;
    uint64_t pending = 0;   // queued records not yet run
    bool recorded = false;  // a record has run
    double milliseconds = 0;
};

struct Graph {
    Context* context = nullptr;
    std::vector<Work> nodes;
};

struct Context {
    int refcount = 0;
    bool alive = false;
    uint64_t generation = 0;
    int sticky = SUCCESS;  // a launch failure poisons the context until it is destroyed
    std::string sticky_message;
    uint64_t used_bytes = 0;
    std::vector<Work> queue;
    std::set<Stream*> streams;
    std::set<Event*> events;
    std::set<Module*> modules;
    std::set<Graph*> graphs;
    std::set<Graph*> execs;
    std::unique_ptr<Stream> default_stream;
};

// ---- global state (guarded by lock()) ---------------------------------------------------------
std::recursive_mutex& lock();
Context& primary();
bool initialized();
void set_error_detail(const std::string& message);
void count(const char* counter, long delta = 1);

// Current context of the calling thread, or an error code (INVALID_CONTEXT, CONTEXT_IS_DESTROYED, sticky).
int current(Context*& context);
// Resolves a stream handle (0 = the context's default stream).
int stream_of(Context& context, void* handle, Stream*& stream);

// ---- memory (memory.cpp) -------------------------------------------------------------------------
int allocate(Context& context, size_t bytes, bool pinned, uintptr_t& address);
int release(Context& context, uintptr_t address, bool pinned);
void release_all(Context& context);
const Allocation* find(uintptr_t address);                  // the live allocation holding address
const Allocation* find_range(uintptr_t address, size_t bytes);  // the live allocation holding [address, address + bytes)
std::string describe_address(uintptr_t address);             // where an address lies relative to allocations
std::string describe(const Allocation& allocation);           // "device allocation #3 (4096 bytes at 0x...)"
bool canaries_intact(const Allocation& a, std::string& error);

// ---- modules (ptx.cpp) ----------------------------------------------------------------------------
int parse_ptx(const char* text, std::vector<KernelImage>& kernels, std::string& error);

// ---- kernel library (kernels.cpp) -------------------------------------------------------------------
bool load_kernel_library(std::string& error);
const gptjx_emu_kernel* host_kernel(const std::string& name);
void fill_shared_memory(unsigned dynamic_bytes);

// ---- queue and execution (queue.cpp, executor.cpp) ----------------------------------------------------
int enqueue(Context& context, Stream& stream, Work work);
int flush(Context& context);  // runs everything queued; returns the context's sticky error
int execute_kernel(const Work& work, std::string& error);
std::string code_at(uintptr_t pc);

}  // namespace emu
