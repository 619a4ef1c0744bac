// Device work is queued per context in the order it was issued on any stream, and runs only when
// the host waits for it (a stream, event or context synchronization, a copy into pageable host
// memory, a free). So a host that reads pinned memory, or reuses a staging buffer, without waiting
// sees what a real GPU may show it: the work not done yet, every time. A captured stream queues
// into its graph instead; a graph launch queues the graph's work.
#include <stdio.h>
#include <string.h>

#include <chrono>

#include "emulator.h"

namespace emu {

namespace {

double now_ms() {
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

int run(Work& w, std::string& error) {
    switch (w.kind) {
        case Work::Kernel:
            return execute_kernel(w, error);
        case Work::CopyToDevice:
        case Work::CopyToHost:
        case Work::CopyOnDevice: {
            // Re-checked at run time: an allocation freed after the copy was queued is a use after free.
            // Both ends are device or pinned memory here: pageable host memory is staged when queued.
            if (!find_range(w.destination, w.bytes)) {
                error = w.what + ": destination is " + describe_address(w.destination);
                return ILLEGAL_ADDRESS;
            }
            if (!w.staged && !find_range(w.source, w.bytes)) {
                error = w.what + ": source is " + describe_address(w.source);
                return ILLEGAL_ADDRESS;
            }
            const void* source = w.staged ? static_cast<const void*>(w.staged->data()) : reinterpret_cast<const void*>(w.source);
            memmove(reinterpret_cast<void*>(w.destination), source, w.bytes);
            return SUCCESS;
        }
        case Work::Memset:
            if (!find_range(w.destination, w.bytes)) {
                error = w.what + ": destination is " + describe_address(w.destination);
                return ILLEGAL_ADDRESS;
            }
            memset(reinterpret_cast<void*>(w.destination), w.value, w.bytes);
            return SUCCESS;
        case Work::RecordEvent:
            w.event->pending--;
            w.event->recorded = true;
            w.event->milliseconds = now_ms();
            return SUCCESS;
        case Work::Native:
            return w.native(error);
    }
    return UNKNOWN;
}

}  // namespace

int enqueue(Context& context, Stream& stream, Work work) {
    if (stream.capturing) {
        stream.captured.push_back(std::move(work));
        return SUCCESS;
    }
    if (work.kind == Work::RecordEvent) work.event->pending++;
    context.queue.push_back(std::move(work));
    return SUCCESS;
}

int flush(Context& context) {
    if (context.sticky != SUCCESS) return context.sticky;
    for (size_t i = 0; i < context.queue.size(); ++i) {
        std::string error;
        const int code = run(context.queue[i], error);
        if (code == SUCCESS) continue;
        // A failed launch poisons the context, as on the device: later calls report the error.
        context.sticky = code;
        context.sticky_message = error;
        set_error_detail(error);
        fprintf(stderr, "gptjx CUDA emulator: %s\n", error.c_str());
        for (size_t j = i + 1; j < context.queue.size(); ++j)
            if (context.queue[j].kind == Work::RecordEvent) context.queue[j].event->pending--;
        context.queue.clear();
        return code;
    }
    context.queue.clear();
    return SUCCESS;
}

}  // namespace emu
