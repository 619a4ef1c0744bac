#include "fiber.h"

#if defined(__x86_64__)
extern "C" void gptjx_emu_switch(void** save, void* load);
#endif

namespace emu {

#if defined(__x86_64__)

void fiber_prepare(Fiber& fiber, uint8_t* bottom, size_t size, void (*entry)()) {
    auto* sp = reinterpret_cast<uintptr_t*>(reinterpret_cast<uintptr_t>(bottom + size) & ~uintptr_t(15));
    *--sp = 0;                                   // entry's return address: it never returns
    *--sp = reinterpret_cast<uintptr_t>(entry);  // where gptjx_emu_switch's `ret` goes
    for (int i = 0; i < 6; ++i) *--sp = 0;       // rbp, rbx, r12-r15
    fiber.sp = sp;
}

void fiber_switch(Fiber& from, Fiber& to) { gptjx_emu_switch(&from.sp, to.sp); }

#else

void fiber_prepare(Fiber& fiber, uint8_t* bottom, size_t size, void (*entry)()) {
    getcontext(&fiber.context);
    fiber.context.uc_stack.ss_sp = bottom;
    fiber.context.uc_stack.ss_size = size;
    fiber.context.uc_link = nullptr;
    makecontext(&fiber.context, entry, 0);
}

void fiber_switch(Fiber& from, Fiber& to) { swapcontext(&from.context, &to.context); }

#endif

}  // namespace emu
