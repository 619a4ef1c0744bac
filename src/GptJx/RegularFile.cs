using System.Runtime.InteropServices;

namespace GptJx;

/// <summary>
/// Model and text files must be regular files: opening a FIFO named config.json blocks until
/// someone writes to it, and reading a device such as /dev/zero never ends. .NET does not tell
/// a file's type, so on Linux statx(2) is asked before the file is opened (symbolic links are
/// followed); elsewhere every existing non-directory passes.
/// </summary>
public static unsafe partial class RegularFile
{
    /// <summary>Why <paramref name="path"/> cannot be read as a file ("is a FIFO ..."), or null when it is a regular file (or missing, or the OS cannot say).</summary>
    public static string? Problem(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        const int AtCurrentDirectory = -100, StatxType = 0x1;
        byte* buffer = stackalloc byte[256];   // struct statx, the same on every Linux architecture
        try
        {
            if (statx(AtCurrentDirectory, path, 0, StatxType, buffer) != 0) return null;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
        int type = *(ushort*)(buffer + 28) & 0xF000;   // stx_mode & S_IFMT
        return type switch
        {
            0x8000 => null,
            0x1000 => "is a FIFO (named pipe), not a regular file",
            0x2000 => "is a character device, not a regular file",
            0x6000 => "is a block device, not a regular file",
            0xC000 => "is a socket, not a regular file",
            0x4000 => "is a directory, not a file",
            _ => "is not a regular file",
        };
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int directory, string path, int flags, uint mask, byte* buffer);
}
