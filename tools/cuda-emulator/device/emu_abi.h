// The interface between the emulated driver (libcuda.so.1) and the kernel library it runs
// (libgptjx-emu-kernels.so, built from kernels/*.cu). Plain C, so either side can be rebuilt alone.
//
// The driver owns the execution: it runs each thread of a block as a fiber on a stack of its own,
// in a region of GPTJX_EMU_STACK_REGION_BYTES aligned to its size, which starts with a header
// naming the thread and its block; so device code finds threadIdx and blockIdx from its own stack
// pointer, whichever host thread runs the block. Device code calls back into the driver at every
// point where threads meet (barriers, warp operations) or where the kernel must stop (a failed check).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPTJX_EMU_ABI_VERSION 2
#define GPTJX_EMU_STACK_REGION_BYTES (1u << 17)

typedef struct { unsigned x, y, z; } gptjx_emu_dim;

typedef struct {
    gptjx_emu_dim thread_idx;
    unsigned linear;  // x + y * bx + z * bx * by
    unsigned lane;    // linear % 32
    unsigned warp;    // linear / 32
} gptjx_emu_thread;

typedef struct {
    gptjx_emu_dim block_idx, block_dim, grid_dim;
} gptjx_emu_block;

// At the start of every emulated thread's stack region.
typedef struct {
    const gptjx_emu_thread* thread;
    const gptjx_emu_block* block;
    void* worker;  // the driver's
} gptjx_emu_lane_header;

// Combines the per-lane arguments of one warp-collective operation once every lane of `mask`
// has arrived: `lane_args[l]` is lane l's argument block (null for lanes outside the mask).
// Returns null on success, or a message (static or thread-local storage) describing misuse.
typedef const char* (*gptjx_emu_warp_resolver)(void* const* lane_args, unsigned mask);

enum { GPTJX_EMU_BARRIER_PLAIN = 0, GPTJX_EMU_BARRIER_COUNT = 1, GPTJX_EMU_BARRIER_AND = 2, GPTJX_EMU_BARRIER_OR = 3 };

typedef struct {
    int abi_version;
    // __syncthreads (and its _count/_and/_or forms): returns the reduced predicate.
    int (*barrier)(int kind, int predicate, const char* file, int line);
    // A warp-collective operation named by its resolver and call site.
    void (*warp_collective)(const char* what, unsigned mask, void* args, gptjx_emu_warp_resolver resolve,
                            const char* file, int line);
    // Ends the launch with an error (misaligned fragment, __trap, failed assert, ...).
    void (*fail)(const char* message, const char* file, int line);
} gptjx_emu_runtime;

typedef struct {
    const char* name;
    void* function;
    void (*invoke)(void* function, void* const* params);
    int param_count;
    const unsigned short* param_sizes;
    const unsigned char* param_is_pointer;
} gptjx_emu_kernel;

// Exported by the kernel library: installs the runtime and lists the kernels.
typedef const gptjx_emu_kernel* (*gptjx_emu_kernels_fn)(const gptjx_emu_runtime* runtime, int* count);
// Exported by the kernel library: the thread's dynamic shared memory arrays (one per `extern
// __shared__` name in the sources), each `gptjx_emu_dynamic_shared_bytes` long.
typedef unsigned char* (*gptjx_emu_dynamic_shared_fn)(int index);

#ifdef __cplusplus
}
#endif
