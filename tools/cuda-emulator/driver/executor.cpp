// Runs one kernel launch on the host, checking it the way compute-sanitizer would:
//
// - Each thread of a block is a fiber. The block runs in passes: every ready thread runs until it
//   reaches a barrier or a warp operation (or exits), handing control straight to the next ready
//   thread; the last thread to arrive at a warp operation resolves it; once no thread is ready, the
//   barrier is released if every live thread waits at the same __syncthreads. Threads at different
//   barriers, a warp operation whose mask names an exited lane or a lane waiting elsewhere, and
//   misuse found by the device code (wmma alignment, shuffle masks, __trap) end the launch with an
//   error naming the kernel, block and thread.
// - Blocks are shared out among worker threads (GPTJX_CUDA_EMULATOR_THREADS, default: the cores),
//   each with its own fibers and shared memory, as SMs run blocks concurrently.
// - Shared memory is filled with NaN bytes before each block; device memory starts as NaN bytes.
// - An access outside every allocation faults on a guard page (or a freed allocation); the fault
//   handler ends the launch with CUDA_ERROR_ILLEGAL_ADDRESS. Writes into an allocation's slack are
//   found by its canaries after the launch.
// - In full checking mode the launch runs twice, threads and blocks in forward and then reversed
//   order, from the same inputs; outputs that differ mean the result depends on scheduling: a race.
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <sstream>
#include <thread>

#include "emulator.h"
#include "fiber.h"

namespace emu {

namespace {

enum LaneState : uint8_t { Ready, AtBarrier, AtWarp, Exited };

struct Lane {
    Fiber fiber;
    gptjx_emu_thread t{};
    LaneState state = Ready;
    const char* what = nullptr;
    const char* file = nullptr;
    int line = 0;
    unsigned mask = 0;
    void* args = nullptr;
    gptjx_emu_warp_resolver resolve = nullptr;
    int barrier_kind = 0, predicate = 0, result = 0;
};

constexpr size_t kRegion = GPTJX_EMU_STACK_REGION_BYTES;  // per emulated thread: header page, guard page, stack
constexpr size_t kPage = 4096;
constexpr size_t kMaxThreads = 1024;
constexpr size_t kSnapshotLimit = size_t(256) << 20;  // larger outputs get one schedule, not two
constexpr unsigned kMaxWorkers = 8;

// The launch being run, shared by the workers.
struct Launch {
    const Work* work = nullptr;
    const gptjx_emu_kernel* kernel = nullptr;
    std::vector<void*> params;
    unsigned lane_count = 0;
    uint64_t blocks = 0;
    bool reverse = false;
    std::atomic<uint64_t> next{0};
    std::atomic<bool> stop{false};
    std::mutex error_lock;
    int error_code = SUCCESS;
    std::string error;
};

Launch g_launch;

// One host thread's machinery for running blocks: its fibers and their stacks, the block's lanes.
struct Worker {
    uint8_t* regions = nullptr;
    Lane lanes[kMaxThreads];
    Fiber scheduler;
    gptjx_emu_block block{};
    Lane* running = nullptr;
    unsigned pass_position = 0, exited = 0;
    unsigned waiting[kMaxThreads / 32];  // lanes of each warp waiting at a warp operation
    bool reverse = false;
    sigjmp_buf fault_jump;
    volatile uintptr_t fault_address = 0, fault_pc = 0;
    volatile int fault_write = -1;
};

Worker g_workers[kMaxWorkers];

// Where every worker's stack regions are, for the fault handler (written once per worker).
std::atomic<uint8_t*> g_region_begin[kMaxWorkers];

// The header at the start of a stack region: how device code and callbacks find their thread.
gptjx_emu_lane_header& header_of(uint8_t* region) { return *reinterpret_cast<gptjx_emu_lane_header*>(region); }

Worker& current_worker() {
    const uintptr_t sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
    return *static_cast<Worker*>(header_of(reinterpret_cast<uint8_t*>(sp & ~(kRegion - 1))).worker);
}

bool prepare_worker(Worker& w) {
    if (w.regions) return true;
    void* p = mmap(nullptr, (kMaxThreads + 1) * kRegion, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    auto* regions = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p) + kRegion - 1) & ~(kRegion - 1));
    for (size_t i = 0; i < kMaxThreads; ++i) {
        uint8_t* r = regions + i * kRegion;
        mprotect(r + kPage, kPage, PROT_NONE);  // between the header and the stack
        header_of(r) = {&w.lanes[i].t, &w.block, &w};
    }
    w.regions = regions;
    g_region_begin[&w - g_workers].store(regions);
    return true;
}

std::string dim(gptjx_emu_dim d) {
    std::ostringstream s;
    s << "(" << d.x << ", " << d.y << ", " << d.z << ")";
    return s.str();
}

std::string where(const Worker& w, const Lane* l) {
    return "block " + dim(w.block.block_idx) + ", thread " + (l ? dim(l->t.thread_idx) : std::string("?"));
}

std::string site(const Lane& l) { return std::string(l.what) + " at " + l.file + ":" + std::to_string(l.line); }

void fail_launch(int code, const std::string& message) {
    std::lock_guard<std::mutex> guard(g_launch.error_lock);
    g_launch.stop = true;
    if (g_launch.error_code != SUCCESS) return;
    g_launch.error_code = code;
    g_launch.error = g_launch.work->what + ": " + message;
}

// A pass runs the ready lanes in order (forward or reversed); a lane that blocks hands control
// straight to the next ready lane of the pass, and the last one back to the scheduler.
Lane* lane_at(Worker& w, unsigned k) { return &w.lanes[w.reverse ? g_launch.lane_count - 1 - k : k]; }

void run_lane(Worker& w, unsigned k, Fiber& from) {
    Lane* next = lane_at(w, k);
    w.pass_position = k;
    w.running = next;
    fiber_switch(from, next->fiber);
}

void yield(Worker& w, Lane* l) {
    if (!g_launch.stop.load(std::memory_order_relaxed))
        for (unsigned k = w.pass_position + 1; k < g_launch.lane_count; ++k)
            if (lane_at(w, k)->state == Ready) {
                run_lane(w, k, l->fiber);
                return;
            }
    fiber_switch(l->fiber, w.scheduler);
}

void lane_main() {
    g_launch.kernel->invoke(g_launch.kernel->function, g_launch.params.data());
    Worker& w = current_worker();
    Lane* l = w.running;
    l->state = Exited;
    ++w.exited;
    yield(w, l);
    __builtin_trap();  // an exited lane is never resumed
}

// ---- callbacks from device code ------------------------------------------------------------

int rt_barrier(int kind, int predicate, const char* file, int line) {
    Worker& w = current_worker();
    Lane* l = w.running;
    l->state = AtBarrier;
    l->what = "__syncthreads";
    l->file = file;
    l->line = line;
    l->barrier_kind = kind;
    l->predicate = predicate;
    yield(w, l);
    return l->result;
}

// Whether every lane of `l`'s mask now waits at the same warp operation as `l` (then it can be
// resolved at once; anything irregular is left to resolve_warps, which reports it).
bool group_complete(Worker& w, const Lane* l) {
    if (w.waiting[l->t.warp] != (unsigned)__builtin_popcount(l->mask)) return false;
    const unsigned base = l->t.warp * 32;
    for (unsigned i = 0; i < 32; ++i) {
        if (!((l->mask >> i) & 1u)) continue;
        if (base + i >= g_launch.lane_count) return false;
        const Lane& b = w.lanes[base + i];
        if (b.state != AtWarp || b.resolve != l->resolve || b.file != l->file || b.line != l->line || b.mask != l->mask) return false;
    }
    return true;
}

void rt_warp(const char* what, unsigned mask, void* args, gptjx_emu_warp_resolver resolve, const char* file, int line) {
    Worker& w = current_worker();
    Lane* l = w.running;
    l->state = AtWarp;
    l->what = what;
    l->file = file;
    l->line = line;
    l->mask = mask;
    l->args = args;
    l->resolve = resolve;
    ++w.waiting[l->t.warp];
    if (group_complete(w, l)) {
        // The last lane to arrive resolves the operation and carries on; the others are ready again.
        Lane* warp = &w.lanes[l->t.warp * 32];
        void* lane_args[32] = {};
        for (unsigned i = 0; i < 32; ++i)
            if ((mask >> i) & 1u) lane_args[i] = warp[i].args;
        if (const char* e = resolve(lane_args, mask)) {
            fail_launch(LAUNCH_FAILED, std::string(e) + " at " + file + ":" + std::to_string(line) + " (" + where(w, l) + ")");
            l->state = Exited;
            yield(w, l);
            __builtin_trap();
        }
        for (unsigned i = 0; i < 32; ++i)
            if ((mask >> i) & 1u) warp[i].state = Ready;
        w.waiting[l->t.warp] -= __builtin_popcount(mask);
        return;
    }
    yield(w, l);
}

void rt_fail(const char* message, const char* file, int line) {
    Worker& w = current_worker();
    Lane* l = w.running;
    fail_launch(LAUNCH_FAILED, std::string(message) + " at " + file + ":" + std::to_string(line) + " (" + where(w, l) + ")");
    l->state = Exited;
    yield(w, l);
    __builtin_trap();
}

// ---- the block scheduler -----------------------------------------------------------------------

// Resolves warp operations whose lanes have all arrived (the ones the last lane could not resolve
// itself); -1 on misuse.
int resolve_warps(Worker& w) {
    int resolved = 0;
    for (unsigned wi = 0; wi * 32 < g_launch.lane_count; ++wi) {
        Lane* warp = &w.lanes[wi * 32];
        const unsigned width = std::min(32u, g_launch.lane_count - wi * 32);
        for (unsigned first = 0; first < width; ++first) {
            Lane& a = warp[first];
            if (a.state != AtWarp) continue;
            void* args[32] = {};
            for (unsigned l = 0; l < 32; ++l) {
                if (!((a.mask >> l) & 1u)) continue;
                Lane* b = l < width ? &warp[l] : nullptr;
                if (!b || b->state == Exited) {
                    std::ostringstream mask;
                    mask << std::hex << a.mask;
                    fail_launch(LAUNCH_FAILED, site(a) + " with mask 0x" + mask.str() + " after lane " + std::to_string(l) + " of warp " +
                                                   std::to_string(wi) + " exited (" + where(w, &a) + ")");
                    return -1;
                }
                if (b->state == AtBarrier || (b->state == AtWarp && (b->resolve != a.resolve || b->file != a.file || b->line != a.line || b->mask != a.mask))) {
                    fail_launch(LAUNCH_FAILED, "divergent warp: lane " + std::to_string(first) + " of warp " + std::to_string(wi) + " waits at " +
                                                   site(a) + " while lane " + std::to_string(l) + " waits at " + site(*b) + " (" + where(w, &a) + ")");
                    return -1;
                }
                args[l] = b->args;
            }
            if (const char* e = a.resolve(args, a.mask)) {
                fail_launch(LAUNCH_FAILED, std::string(e) + " at " + a.file + ":" + std::to_string(a.line) + " (" + where(w, &a) + ")");
                return -1;
            }
            for (unsigned l = 0; l < width; ++l)
                if ((a.mask >> l) & 1u) warp[l].state = Ready;
            w.waiting[wi] -= __builtin_popcount(a.mask);
            ++resolved;
        }
    }
    return resolved;
}

// Releases a __syncthreads every live thread waits at; false on threads at different barriers.
bool release_barrier(Worker& w) {
    Lane* first = nullptr;
    for (unsigned i = 0; i < g_launch.lane_count; ++i) {
        Lane& l = w.lanes[i];
        if (l.state == Exited) continue;
        if (!first) { first = &l; continue; }
        if (l.state != AtBarrier || first->state != AtBarrier || l.file != first->file || l.line != first->line || l.barrier_kind != first->barrier_kind) {
            fail_launch(LAUNCH_FAILED, "threads wait at different synchronization points: thread " + dim(first->t.thread_idx) + " at " +
                                           site(*first) + ", thread " + dim(l.t.thread_idx) + " at " + site(l) + " (block " +
                                           dim(w.block.block_idx) + ")");
            return false;
        }
    }
    int count = 0, all = 1, any = 0;
    for (unsigned i = 0; i < g_launch.lane_count; ++i) {
        Lane& l = w.lanes[i];
        if (l.state != AtBarrier) continue;
        count += l.predicate;
        all &= l.predicate;
        any |= l.predicate;
    }
    const int kind = first->barrier_kind;
    const int result = kind == GPTJX_EMU_BARRIER_COUNT ? count : kind == GPTJX_EMU_BARRIER_AND ? all : kind == GPTJX_EMU_BARRIER_OR ? any : 0;
    for (unsigned i = 0; i < g_launch.lane_count; ++i) {
        Lane& l = w.lanes[i];
        if (l.state == AtBarrier) {
            l.result = result;
            l.state = Ready;
        }
    }
    return true;
}

bool run_block(Worker& w, gptjx_emu_dim block_idx) {
    fill_shared_memory(g_launch.work->dynamic_shared);
    w.block.block_idx = block_idx;
    w.reverse = g_launch.reverse;
    w.exited = 0;
    memset(w.waiting, 0, sizeof w.waiting);
    const gptjx_emu_dim b = g_launch.work->block;
    for (unsigned i = 0; i < g_launch.lane_count; ++i) {
        Lane& l = w.lanes[i];
        l.state = Ready;
        l.t.thread_idx = {i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
        l.t.linear = i;
        l.t.lane = i % 32;
        l.t.warp = i / 32;
        fiber_prepare(l.fiber, w.regions + i * kRegion + 2 * kPage, kRegion - 2 * kPage, lane_main);
    }
    for (;;) {
        bool ran = false;
        for (unsigned k = 0; k < g_launch.lane_count && !ran; ++k)
            if (lane_at(w, k)->state == Ready) {
                run_lane(w, k, w.scheduler);  // returns when the pass is over
                ran = true;
            }
        if (g_launch.stop) return false;
        if (w.exited == g_launch.lane_count) return true;
        if (ran) continue;  // lanes made ready during the pass run in the next one
        const int resolved = resolve_warps(w);
        if (resolved < 0) return false;
        if (resolved == 0 && !release_barrier(w)) return false;
    }
}

std::string hex(uintptr_t v) {
    std::ostringstream s;
    s << "0x" << std::hex << v;
    return s.str();
}

// Runs blocks of the launch until none are left (or one fails). A fault in device code lands
// back here through the worker's jump buffer.
void work_blocks(Worker& w) {
    if (const int signal = sigsetjmp(w.fault_jump, 1)) {
        const char* access = w.fault_write == 1 ? "write" : w.fault_write == 0 ? "read" : "access";
        if (w.fault_address == 0 && signal == SIGSEGV)
            fail_launch(MISALIGNED_ADDRESS, std::string("misaligned or invalid address in a vector ") + access + " in " + code_at(w.fault_pc) +
                                                " (" + where(w, w.running) + ")");
        else
            fail_launch(ILLEGAL_ADDRESS, std::string("out-of-bounds ") + access + " at address " + hex(w.fault_address) + ", " +
                                             describe_address(w.fault_address) + " (" + where(w, w.running) + ")");
        return;
    }
    const gptjx_emu_dim g = g_launch.work->grid;
    for (;;) {
        if (g_launch.stop) return;
        const uint64_t k = g_launch.next.fetch_add(1);
        if (k >= g_launch.blocks) return;
        const uint64_t b = g_launch.reverse ? g_launch.blocks - 1 - k : k;
        if (!run_block(w, {(unsigned)(b % g.x), (unsigned)(b / g.x % g.y), (unsigned)(b / ((uint64_t)g.x * g.y))})) return;
    }
}

// ---- faults ----------------------------------------------------------------------------------------

struct sigaction g_previous_segv, g_previous_bus;

// The worker whose fiber stack `sp` is on, or null.
Worker* worker_at(uintptr_t sp) {
    for (unsigned i = 0; i < kMaxWorkers; ++i) {
        const uintptr_t begin = reinterpret_cast<uintptr_t>(g_region_begin[i].load(std::memory_order_acquire));
        if (begin && sp >= begin && sp < begin + kMaxThreads * kRegion) return &g_workers[i];
    }
    return nullptr;
}

void on_fault(int signal, siginfo_t* info, void* context) {
    auto* uc = static_cast<ucontext_t*>(context);
#if defined(__x86_64__)
    const uintptr_t sp = uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    const uintptr_t sp = uc->uc_mcontext.sp;
#else
    const uintptr_t sp = 0;
#endif
    if (Worker* w = worker_at(sp)) {
        w->fault_address = reinterpret_cast<uintptr_t>(info->si_addr);
#if defined(__x86_64__)
        w->fault_write = (uc->uc_mcontext.gregs[REG_ERR] & 2) ? 1 : 0;
        w->fault_pc = uc->uc_mcontext.gregs[REG_RIP];
        if (w->fault_pc == 0) w->fault_pc = *reinterpret_cast<uintptr_t*>(sp);  // a call through a null pointer: name the caller
#endif
        siglongjmp(w->fault_jump, signal);
    }
    const struct sigaction& previous = signal == SIGSEGV ? g_previous_segv : g_previous_bus;
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(signal, info, context);
    } else if (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN) {
        ::signal(signal, SIG_DFL);  // the faulting instruction runs again and ends the process as usual
    } else {
        previous.sa_handler(signal);
    }
}

void install_fault_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction action {};
        action.sa_sigaction = on_fault;
        action.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&action.sa_mask);
        sigaction(SIGSEGV, &action, &g_previous_segv);
        sigaction(SIGBUS, &action, &g_previous_bus);
    });
}

// A fault on a fiber's guard page is a stack overflow; the handler needs a stack of its own then.
void ensure_signal_stack() {
    thread_local bool done = false;
    if (done) return;
    done = true;
    stack_t current{};
    if (sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE)) return;  // the runtime has one
    stack_t stack{};
    stack.ss_size = 64 * 1024;
    stack.ss_sp = mmap(nullptr, stack.ss_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack.ss_sp != MAP_FAILED) sigaltstack(&stack, nullptr);
}

// ---- the worker pool ---------------------------------------------------------------------------------

unsigned worker_count() {
    static const unsigned n = [] {
        const char* v = getenv("GPTJX_CUDA_EMULATOR_THREADS");
        unsigned want = v && *v ? (unsigned)atoi(v) : std::thread::hardware_concurrency();
        return std::max(1u, std::min(want, kMaxWorkers));
    }();
    return n;
}

// Pool threads 1..n-1 run blocks beside the calling thread (worker 0) for each grid.
struct Pool {
    std::mutex lock;
    std::condition_variable start, finished;
    uint64_t generation = 0;
    unsigned busy = 0;

    static void serve(unsigned index) {
        Pool& p = pool();
        ensure_signal_stack();
        uint64_t seen = 0;
        for (;;) {
            {
                std::unique_lock<std::mutex> guard(p.lock);
                p.start.wait(guard, [&] { return p.generation != seen; });
                seen = p.generation;
            }
            work_blocks(g_workers[index]);
            std::lock_guard<std::mutex> guard(p.lock);
            if (--p.busy == 0) p.finished.notify_all();
        }
    }

    static Pool& pool() {
        static Pool* p = [] {
            auto* created = new Pool();  // lives as long as the process, like its threads
            for (unsigned i = 1; i < worker_count(); ++i) std::thread(serve, i).detach();
            return created;
        }();
        return *p;
    }
};

// Runs every block of the launch, in forward or reversed order.
bool run_grid(bool reverse) {
    g_launch.reverse = reverse;
    g_launch.next = 0;
    g_launch.stop = false;
    const unsigned helpers = g_launch.blocks > 1 ? worker_count() - 1 : 0;
    if (helpers) {
        Pool& p = Pool::pool();
        std::lock_guard<std::mutex> guard(p.lock);
        p.busy = helpers;
        ++p.generation;
        p.start.notify_all();
    }
    work_blocks(g_workers[0]);
    if (helpers) {
        Pool& p = Pool::pool();
        std::unique_lock<std::mutex> guard(p.lock);
        p.finished.wait(guard, [&] { return p.busy == 0; });
    }
    return g_launch.error_code == SUCCESS;
}

struct Output {
    const Allocation* allocation;
    std::vector<uint8_t> before, after;
};

}  // namespace

// "function+0x12" for a code address (the device function that faulted), or the address.
std::string code_at(uintptr_t pc) {
    Dl_info info{};
    std::ostringstream s;
    if (pc && dladdr(reinterpret_cast<void*>(pc), &info) && info.dli_sname)
        s << info.dli_sname << "+0x" << std::hex << (pc - reinterpret_cast<uintptr_t>(info.dli_saddr));
    else
        s << "code at 0x" << std::hex << pc;
    return s.str();
}

extern const gptjx_emu_runtime g_runtime = {GPTJX_EMU_ABI_VERSION, rt_barrier, rt_warp, rt_fail};

int execute_kernel(const Work& work, std::string& error) {
    const KernelImage& image = work.function->image;
    g_launch.work = &work;
    g_launch.kernel = image.host;
    g_launch.error_code = SUCCESS;
    g_launch.error.clear();
    g_launch.lane_count = work.block.x * work.block.y * work.block.z;
    g_launch.blocks = (uint64_t)work.grid.x * work.grid.y * work.grid.z;
    g_launch.params.clear();
    for (size_t offset : work.param_offsets) g_launch.params.push_back(const_cast<uint8_t*>(work.params.data()) + offset);
    for (unsigned i = 0; i < worker_count(); ++i) {
        if (!prepare_worker(g_workers[i])) {
            error = work.what + ": cannot allocate fiber stacks";
            return OUT_OF_MEMORY;
        }
        g_workers[i].block.block_dim = work.block;
        g_workers[i].block.grid_dim = work.grid;
    }
    install_fault_handler();
    ensure_signal_stack();

    // Pointer parameters must point into live allocations (or be null); outputs are the
    // allocations behind pointers to non-const data.
    std::vector<const Allocation*> touched;
    std::vector<Output> outputs;
    size_t output_bytes = 0;
    for (int i = 0; i < image.host->param_count; ++i) {
        if (!image.host->param_is_pointer[i]) continue;
        uintptr_t p;
        memcpy(&p, g_launch.params[i], sizeof p);
        if (p == 0) continue;
        const Allocation* a = find(p);
        if (!a) {
            error = work.what + ": parameter " + std::to_string(i) + " is " + hex(p) + ", " + describe_address(p);
            return ILLEGAL_ADDRESS;
        }
        if (std::find(touched.begin(), touched.end(), a) == touched.end()) touched.push_back(a);
        if (image.host->param_is_pointer[i] == 2 && !a->pinned &&
            std::none_of(outputs.begin(), outputs.end(), [&](const Output& o) { return o.allocation == a; })) {
            outputs.push_back({a, {}, {}});
            output_bytes += a->size;
        }
    }
    const bool two_schedules = check_mode() == CheckFull && output_bytes <= kSnapshotLimit;
    if (two_schedules)
        for (auto& o : outputs) o.before.assign(reinterpret_cast<uint8_t*>(o.allocation->base), reinterpret_cast<uint8_t*>(o.allocation->base) + o.allocation->size);

    auto canaries = [&]() {
        for (const Allocation* a : touched) {
            std::string e;
            if (!a->pinned && !canaries_intact(*a, e)) {
                fail_launch(ILLEGAL_ADDRESS, e);
                return false;
            }
        }
        return true;
    };
    bool ok = run_grid(false) && canaries();
    if (ok && two_schedules) {
        for (auto& o : outputs) {
            uint8_t* p = reinterpret_cast<uint8_t*>(o.allocation->base);
            o.after.assign(p, p + o.allocation->size);
            memcpy(p, o.before.data(), o.allocation->size);
        }
        ok = run_grid(true) && canaries();
        for (auto& o : outputs) {
            if (!ok) break;
            const uint8_t* p = reinterpret_cast<const uint8_t*>(o.allocation->base);
            const auto mismatch = std::mismatch(o.after.begin(), o.after.end(), p);
            if (mismatch.first != o.after.end()) {
                const size_t at = mismatch.first - o.after.begin();
                std::ostringstream s;
                s << "race: the output differs between two thread schedules (threads and blocks in forward, then reversed order) at byte "
                  << at << " of " << describe(*o.allocation) << ": 0x" << std::hex << (int)*mismatch.first
                  << " then 0x" << (int)*mismatch.second << " (threads that share data without a barrier between them?)";
                fail_launch(LAUNCH_FAILED, s.str());
                ok = false;
            }
        }
    }
    count("launches");
    if (ok) return SUCCESS;
    error = g_launch.error;
    return g_launch.error_code;
}

}  // namespace emu
