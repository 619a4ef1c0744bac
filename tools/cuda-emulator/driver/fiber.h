// Fibers: the emulated GPU threads of one block, run one at a time on the host thread that
// executes the launch. x86-64 uses a few instructions of assembly to switch; other hosts use
// ucontext (slower: it saves the signal mask on every switch).
#pragma once
#include <stddef.h>
#include <stdint.h>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace emu {

struct Fiber {
#if defined(__x86_64__)
    void* sp = nullptr;
#else
    ucontext_t context;
#endif
};

// Prepares `fiber` to run entry() (which must never return) on the stack [bottom, bottom + size).
void fiber_prepare(Fiber& fiber, uint8_t* bottom, size_t size, void (*entry)());
// Saves the running fiber into `from` and resumes `to`.
void fiber_switch(Fiber& from, Fiber& to);

}  // namespace emu
