// Runs one kernel launch on the host, checking it the way compute-sanitizer would:
//
// - Each thread of a block is a fiber. The block runs in passes: every ready thread runs until it
//   reaches a barrier or a warp operation (or exits); then warp operations whose lanes have all
//   arrived are resolved, and otherwise the barrier is released once every live thread waits at
//   the same __syncthreads. Threads at different barriers, a warp operation whose mask names an
//   exited lane or a lane waiting elsewhere, and misuse found by the device code (wmma alignment,
//   shuffle masks, __trap) end the launch with an error naming the kernel, block and thread.
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
#include <sstream>

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

constexpr size_t kStackBytes = 64 * 1024;
constexpr size_t kGuardBytes = 4096;
constexpr size_t kMaxThreads = 1024;
constexpr size_t kSnapshotLimit = size_t(256) << 20;  // larger outputs get one schedule, not two

// The launch being executed (one at a time: the driver lock is held).
struct Run {
    const Work* work = nullptr;
    const gptjx_emu_kernel* kernel = nullptr;
    std::vector<void*> params;
    Lane lanes[kMaxThreads];
    unsigned lane_count = 0;
    Lane* running = nullptr;
    Fiber scheduler;
    gptjx_emu_block block{};
    int error_code = SUCCESS;
    std::string error;
};

Run g_run;
gptjx_emu_thread* g_thread = nullptr;
gptjx_emu_block* g_block = &g_run.block;
uint8_t* g_stacks = nullptr;

// Fault handling: only faults of the thread running a kernel are ours.
volatile sig_atomic_t g_in_kernel = 0;
pthread_t g_kernel_thread;
sigjmp_buf g_fault_jump;
volatile uintptr_t g_fault_address = 0;
volatile int g_fault_write = -1;
volatile uintptr_t g_fault_pc = 0;
struct sigaction g_previous_segv, g_previous_bus;

std::string dim(gptjx_emu_dim d) {
    std::ostringstream s;
    s << "(" << d.x << ", " << d.y << ", " << d.z << ")";
    return s.str();
}

std::string where(const Lane* l) {
    return "block " + dim(g_run.block.block_idx) + ", thread " + (l ? dim(l->t.thread_idx) : std::string("?"));
}

std::string site(const Lane& l) { return std::string(l.what) + " at " + l.file + ":" + std::to_string(l.line); }

void fail_launch(int code, const std::string& message) {
    if (g_run.error_code != SUCCESS) return;
    g_run.error_code = code;
    g_run.error = g_run.work->what + ": " + message;
}

void yield(Lane* l) { fiber_switch(l->fiber, g_run.scheduler); }

void resume(Lane* l) {
    g_run.running = l;
    g_thread = &l->t;
    fiber_switch(g_run.scheduler, l->fiber);
}

void lane_main() {
    g_run.kernel->invoke(g_run.kernel->function, g_run.params.data());
    Lane* l = g_run.running;
    l->state = Exited;
    yield(l);
    __builtin_trap();  // an exited lane is never resumed
}

// ---- callbacks from device code ------------------------------------------------------------

int rt_barrier(int kind, int predicate, const char* file, int line) {
    Lane* l = g_run.running;
    l->state = AtBarrier;
    l->what = "__syncthreads";
    l->file = file;
    l->line = line;
    l->barrier_kind = kind;
    l->predicate = predicate;
    yield(l);
    return l->result;
}

void rt_warp(const char* what, unsigned mask, void* args, gptjx_emu_warp_resolver resolve, const char* file, int line) {
    Lane* l = g_run.running;
    l->state = AtWarp;
    l->what = what;
    l->file = file;
    l->line = line;
    l->mask = mask;
    l->args = args;
    l->resolve = resolve;
    yield(l);
}

void rt_fail(const char* message, const char* file, int line) {
    Lane* l = g_run.running;
    fail_launch(LAUNCH_FAILED, std::string(message) + " at " + file + ":" + std::to_string(line) + " (" + where(l) + ")");
    l->state = Exited;
    yield(l);
    __builtin_trap();
}

// ---- the block scheduler -----------------------------------------------------------------------

// Resolves every warp operation whose lanes have all arrived; -1 on misuse.
int resolve_warps() {
    int resolved = 0;
    for (unsigned w = 0; w * 32 < g_run.lane_count; ++w) {
        Lane* warp = &g_run.lanes[w * 32];
        const unsigned width = std::min(32u, g_run.lane_count - w * 32);
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
                                                   std::to_string(w) + " exited (" + where(&a) + ")");
                    return -1;
                }
                if (b->state == AtBarrier || (b->state == AtWarp && (b->resolve != a.resolve || b->file != a.file || b->line != a.line || b->mask != a.mask))) {
                    fail_launch(LAUNCH_FAILED, "divergent warp: lane " + std::to_string(first) + " of warp " + std::to_string(w) + " waits at " +
                                                   site(a) + " while lane " + std::to_string(l) + " waits at " + site(*b) + " (" + where(&a) + ")");
                    return -1;
                }
                args[l] = b->args;
            }
            if (const char* e = a.resolve(args, a.mask)) {
                fail_launch(LAUNCH_FAILED, std::string(e) + " at " + a.file + ":" + std::to_string(a.line) + " (" + where(&a) + ")");
                return -1;
            }
            for (unsigned l = 0; l < width; ++l)
                if ((a.mask >> l) & 1u) warp[l].state = Ready;
            ++resolved;
        }
    }
    return resolved;
}

// Releases a __syncthreads every live thread waits at; false on threads at different barriers.
bool release_barrier() {
    Lane* first = nullptr;
    for (unsigned i = 0; i < g_run.lane_count; ++i) {
        Lane& l = g_run.lanes[i];
        if (l.state == Exited) continue;
        if (!first) { first = &l; continue; }
        if (l.state != AtBarrier || first->state != AtBarrier || l.file != first->file || l.line != first->line || l.barrier_kind != first->barrier_kind) {
            fail_launch(LAUNCH_FAILED, "threads wait at different synchronization points: thread " + dim(first->t.thread_idx) + " at " +
                                           site(*first) + ", thread " + dim(l.t.thread_idx) + " at " + site(l) + " (block " +
                                           dim(g_run.block.block_idx) + ")");
            return false;
        }
    }
    int count = 0, all = 1, any = 0;
    for (unsigned i = 0; i < g_run.lane_count; ++i) {
        Lane& l = g_run.lanes[i];
        if (l.state != AtBarrier) continue;
        count += l.predicate;
        all &= l.predicate;
        any |= l.predicate;
    }
    const int kind = first->barrier_kind;
    const int result = kind == GPTJX_EMU_BARRIER_COUNT ? count : kind == GPTJX_EMU_BARRIER_AND ? all : kind == GPTJX_EMU_BARRIER_OR ? any : 0;
    for (unsigned i = 0; i < g_run.lane_count; ++i) {
        Lane& l = g_run.lanes[i];
        if (l.state == AtBarrier) {
            l.result = result;
            l.state = Ready;
        }
    }
    return true;
}

bool run_block(gptjx_emu_dim block_idx, bool reverse) {
    fill_shared_memory(g_run.work->dynamic_shared);
    g_run.block.block_idx = block_idx;
    const gptjx_emu_dim b = g_run.work->block;
    for (unsigned i = 0; i < g_run.lane_count; ++i) {
        Lane& l = g_run.lanes[i];
        l.state = Ready;
        l.t.thread_idx = {i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
        l.t.linear = i;
        l.t.lane = i % 32;
        l.t.warp = i / 32;
        fiber_prepare(l.fiber, g_stacks + i * (kStackBytes + kGuardBytes) + kGuardBytes, kStackBytes, lane_main);
    }
    for (;;) {
        for (unsigned k = 0; k < g_run.lane_count; ++k) {
            Lane& l = g_run.lanes[reverse ? g_run.lane_count - 1 - k : k];
            if (l.state != Ready) continue;
            resume(&l);
            if (g_run.error_code != SUCCESS) return false;
        }
        bool done = true;
        for (unsigned i = 0; i < g_run.lane_count && done; ++i) done = g_run.lanes[i].state == Exited;
        if (done) return true;
        const int resolved = resolve_warps();
        if (resolved < 0) return false;
        if (resolved == 0 && !release_barrier()) return false;
    }
}

void on_fault(int signal, siginfo_t* info, void* context) {
    if (g_in_kernel && pthread_equal(pthread_self(), g_kernel_thread)) {
        g_fault_address = reinterpret_cast<uintptr_t>(info->si_addr);
#if defined(__x86_64__)
        g_fault_write = (static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_ERR] & 2) ? 1 : 0;
        g_fault_pc = static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RIP];
        if (g_fault_pc == 0)  // a call through a null pointer: report the caller
            g_fault_pc = *reinterpret_cast<uintptr_t*>(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RSP]);
#endif
        siglongjmp(g_fault_jump, signal);
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
    static bool installed = false;
    if (installed) return;
    installed = true;
    struct sigaction action {};
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &g_previous_segv);
    sigaction(SIGBUS, &action, &g_previous_bus);
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

bool allocate_stacks() {
    if (g_stacks) return true;
    const size_t bytes = kMaxThreads * (kStackBytes + kGuardBytes);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    g_stacks = static_cast<uint8_t*>(p);
    for (size_t i = 0; i < kMaxThreads; ++i) mprotect(g_stacks + i * (kStackBytes + kGuardBytes), kGuardBytes, PROT_NONE);
    return true;
}

// Runs every block of the launch, in forward or reversed order.
bool run_grid(bool reverse) {
    const gptjx_emu_dim g = g_run.work->grid;
    const uint64_t blocks = (uint64_t)g.x * g.y * g.z;
    g_kernel_thread = pthread_self();
    if (const int signal = sigsetjmp(g_fault_jump, 1)) {
        g_in_kernel = 0;
        const uintptr_t address = g_fault_address;
        const char* access = g_fault_write == 1 ? "write" : g_fault_write == 0 ? "read" : "access";
        if (address == 0 && signal == SIGSEGV)
            fail_launch(MISALIGNED_ADDRESS, std::string("misaligned or invalid address in a vector ") + access + " in " + code_at(g_fault_pc) + " (" +
                                                where(g_run.running) + ")");
        else
            fail_launch(ILLEGAL_ADDRESS, std::string("out-of-bounds ") + access + " at address 0x" +
                                             [&] { std::ostringstream s; s << std::hex << address; return s.str(); }() + ", " +
                                             describe_address(address) + " (" + where(g_run.running) + ")");
        return false;
    }
    g_in_kernel = 1;
    for (uint64_t k = 0; k < blocks; ++k) {
        const uint64_t b = reverse ? blocks - 1 - k : k;
        const gptjx_emu_dim idx{(unsigned)(b % g.x), (unsigned)(b / g.x % g.y), (unsigned)(b / ((uint64_t)g.x * g.y))};
        if (!run_block(idx, reverse)) {
            g_in_kernel = 0;
            return false;
        }
    }
    g_in_kernel = 0;
    return true;
}

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

namespace {

struct Output {
    const Allocation* allocation;
    std::vector<uint8_t> before, after;
};

}  // namespace

extern const gptjx_emu_runtime g_runtime = {GPTJX_EMU_ABI_VERSION, &g_thread, &g_block, rt_barrier, rt_warp, rt_fail};

int execute_kernel(const Work& work, std::string& error) {
    const KernelImage& image = work.function->image;
    g_run.work = &work;
    g_run.kernel = image.host;
    g_run.error_code = SUCCESS;
    g_run.error.clear();
    g_run.lane_count = work.block.x * work.block.y * work.block.z;
    g_run.block.block_dim = work.block;
    g_run.block.grid_dim = work.grid;
    g_run.params.clear();
    for (size_t offset : work.param_offsets) g_run.params.push_back(const_cast<uint8_t*>(work.params.data()) + offset);
    if (!allocate_stacks()) {
        error = work.what + ": cannot allocate fiber stacks";
        return OUT_OF_MEMORY;
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
        memcpy(&p, g_run.params[i], sizeof p);
        if (p == 0) continue;
        const Allocation* a = find(p);
        if (!a) {
            std::ostringstream s;
            s << work.what << ": parameter " << i << " is 0x" << std::hex << p << std::dec << ", " << describe_address(p);
            error = s.str();
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
    error = g_run.error;
    return g_run.error_code;
}

}  // namespace emu
