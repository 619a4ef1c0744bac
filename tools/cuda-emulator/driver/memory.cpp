// Device and pinned allocations. Each allocation is its own mapping:
//
//   [guard page][lead-in ... | data (size bytes) | tail < 16 bytes][guard page]
//
// The data ends at most 15 bytes before the second guard page (so pointers stay 16-byte aligned,
// as the kernels' vector loads need), so an access past the end faults at once; the lead-in and
// the tail are canaries, checked after every launch that could reach them. New memory and the
// canaries hold 0xff bytes: NaN in fp32, fp16 and bf16, so reads of memory nobody wrote show up.
// Freed allocations stay mapped without access for a while, so a use after free faults too.
#include <string.h>
#include <sys/mman.h>

#include <deque>
#include <sstream>

#include "emulator.h"

namespace emu {

namespace {

constexpr size_t kPage = 4096;
constexpr uint8_t kFill = 0xff;
constexpr size_t kQuarantineCount = 4096;
constexpr size_t kQuarantineBytes = size_t(64) << 30;

std::map<uintptr_t, Allocation> g_live;  // by base
std::deque<Allocation> g_freed;
size_t g_freed_bytes = 0;
uint64_t g_next_id = 1;

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }
size_t charged(size_t bytes) { return round_up(bytes, 256); }

void unmap(const Allocation& a) { munmap(reinterpret_cast<void*>(a.map_base), a.map_size); }

void quarantine(const Allocation& a) {
    mprotect(reinterpret_cast<void*>(a.map_base), a.map_size, PROT_NONE);
    madvise(reinterpret_cast<void*>(a.map_base), a.map_size, MADV_DONTNEED);
    g_freed.push_back(a);
    g_freed_bytes += a.map_size;
    while (g_freed.size() > kQuarantineCount || g_freed_bytes > kQuarantineBytes) {
        unmap(g_freed.front());
        g_freed_bytes -= g_freed.front().map_size;
        g_freed.pop_front();
    }
}

std::string hex(uintptr_t v) {
    std::ostringstream s;
    s << "0x" << std::hex << v;
    return s.str();
}

}  // namespace

std::string describe(const Allocation& a) {
    std::ostringstream s;
    s << (a.pinned ? "pinned host allocation #" : "device allocation #") << a.id << " (" << a.size << " bytes at " << hex(a.base) << ")";
    return s.str();
}

int allocate(Context& context, size_t bytes, bool pinned, uintptr_t& address) {
    if (bytes == 0) return INVALID_VALUE;
    if (!pinned && context.used_bytes + charged(bytes) > profile().memory_bytes) return OUT_OF_MEMORY;
    const size_t data = round_up(bytes, 16);
    const size_t pages = round_up(data, kPage) / kPage;
    const size_t map_size = (pages + 2) * kPage;
    void* map = mmap(nullptr, map_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) return OUT_OF_MEMORY;
    uint8_t* body = static_cast<uint8_t*>(map) + kPage;
    if (mprotect(body, pages * kPage, PROT_READ | PROT_WRITE) != 0) {
        munmap(map, map_size);
        return OUT_OF_MEMORY;
    }
    memset(body, kFill, pages * kPage);
    Allocation a;
    a.map_base = reinterpret_cast<uintptr_t>(map);
    a.map_size = map_size;
    a.base = reinterpret_cast<uintptr_t>(body + pages * kPage - data);
    a.size = bytes;
    a.pinned = pinned;
    a.context = &context;
    a.id = g_next_id++;
    g_live[a.base] = a;
    if (!pinned) context.used_bytes += charged(bytes);
    address = a.base;
    count(pinned ? "pinned_allocations" : "device_allocations");
    return SUCCESS;
}

int release(Context& context, uintptr_t address, bool pinned) {
    auto it = g_live.find(address);
    if (it == g_live.end() || it->second.pinned != pinned || it->second.context != &context) return INVALID_VALUE;
    if (!pinned) context.used_bytes -= charged(it->second.size);
    quarantine(it->second);
    g_live.erase(it);
    return SUCCESS;
}

void release_all(Context& context) {
    for (auto it = g_live.begin(); it != g_live.end();) {
        if (it->second.context == &context) {
            quarantine(it->second);
            it = g_live.erase(it);
        } else {
            ++it;
        }
    }
    context.used_bytes = 0;
}

const Allocation* find(uintptr_t address) {
    auto it = g_live.upper_bound(address);
    if (it == g_live.begin()) return nullptr;
    --it;
    return address - it->second.base < it->second.size ? &it->second : nullptr;
}

const Allocation* find_range(uintptr_t address, size_t bytes) {
    const Allocation* a = find(address);
    if (!a || bytes > a->size - (address - a->base)) return nullptr;
    return a;
}

std::string describe_address(uintptr_t address) {
    for (const auto& [base, a] : g_live) {
        if (address < a.map_base || address >= a.map_base + a.map_size) continue;
        if (address >= a.base + a.size) return std::to_string(address - (a.base + a.size)) + " bytes past the end of " + describe(a);
        if (address < a.base) return std::to_string(a.base - address) + " bytes before the start of " + describe(a);
        return "inside " + describe(a);
    }
    for (auto it = g_freed.rbegin(); it != g_freed.rend(); ++it)
        if (address >= it->map_base && address < it->map_base + it->map_size) return "in " + describe(*it) + ", which was freed";
    return "outside every allocation";
}

bool canaries_intact(const Allocation& a, std::string& error) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(a.map_base + kPage);
    const uint8_t* base = reinterpret_cast<const uint8_t*>(a.base);
    const uint8_t* end = reinterpret_cast<const uint8_t*>(a.map_base + a.map_size - kPage);
    for (const uint8_t* q = base - 1; q >= p && q >= base - 4096; --q)
        if (*q != kFill) {
            error = "out-of-bounds write " + std::to_string(base - q) + " bytes before the start of " + describe(a);
            return false;
        }
    for (const uint8_t* q = base + a.size; q < end; ++q)
        if (*q != kFill) {
            error = "out-of-bounds write " + std::to_string(q - (base + a.size)) + " bytes past the end of " + describe(a);
            return false;
        }
    return true;
}

}  // namespace emu
