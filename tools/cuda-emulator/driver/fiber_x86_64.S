// Switches between fibers (emulated GPU threads) on x86-64: saves the callee-saved registers on
// the current stack, stores the stack pointer in *save, and resumes the fiber whose stack pointer
// is `load` (System V ABI). MXCSR and the x87 control word are left alone: no device code changes
// them, and reloading them costs more than the rest of the switch.
//   void gptjx_emu_switch(void** save, void* load);
    .text
    .globl gptjx_emu_switch
    .hidden gptjx_emu_switch
    .type gptjx_emu_switch, @function
gptjx_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size gptjx_emu_switch, .-gptjx_emu_switch
    .section .note.GNU-stack,"",@progbits
