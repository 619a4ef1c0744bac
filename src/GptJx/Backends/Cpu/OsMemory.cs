using System.Runtime.InteropServices;

namespace GptJx.Backends.Cpu;

/// <summary>
/// Memory hints to the OS (Linux madvise; no-ops elsewhere): large weight buffers on
/// huge pages (fewer TLB misses while streaming gigabytes per token), and checkpoint
/// pages dropped from the process once their tensor is packed, so that mapped file
/// pages and packed copies are not both resident while a model loads.
/// </summary>
internal static unsafe partial class OsMemory
{
    private const int MadvWillNeed = 3, MadvDontNeed = 4, MadvHugePage = 14, MadvPopulateRead = 22;
    private const long PageSize = 4096;
    private static bool _populateUnsupported;

    /// <summary>Allocates <paramref name="bytes"/> aligned for huge pages when large.</summary>
    public static byte* AllocateLarge(long bytes)
    {
        const long Huge = 2 << 20;
        nuint alignment = bytes >= 2 * Huge ? (nuint)Huge : 64;
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 64), alignment);
        if (alignment == Huge) Advise(p, bytes, MadvHugePage);
        return p;
    }

    /// <summary>Asks the OS to read the pages of [pointer, pointer + bytes) in now, in bulk.</summary>
    public static void Prefetch(byte* pointer, long bytes)
    {
        if (!_populateUnsupported && Advise(pointer, bytes, MadvPopulateRead) != 0) _populateUnsupported = true;
        if (_populateUnsupported) Advise(pointer, bytes, MadvWillNeed);
    }

    /// <summary>
    /// Drops the process's mapping of the whole pages inside a read-only file mapping range;
    /// the file is unchanged and a later read maps the pages in again.
    /// </summary>
    public static void Release(byte* pointer, long bytes)
    {
        long start = ((long)pointer + PageSize - 1) & ~(PageSize - 1);
        long end = ((long)pointer + bytes) & ~(PageSize - 1);
        if (end > start) Advise((byte*)start, end - start, MadvDontNeed);
    }

    private static int Advise(byte* pointer, long bytes, int advice)
    {
        if (!OperatingSystem.IsLinux() || bytes <= 0) return 0;
        long start = (long)pointer & ~(PageSize - 1);
        long length = (long)pointer + bytes - start;
        try { return madvise((nint)start, (nuint)length, advice); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return -1; }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(nint address, nuint length, int advice);
}
