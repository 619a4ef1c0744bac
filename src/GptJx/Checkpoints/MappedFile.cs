using System.IO.MemoryMappedFiles;

namespace GptJx.Checkpoints;

/// <summary>
/// A whole file mapped read-only into memory, with a raw pointer to its first
/// byte. Checkpoints are read through this so that multi-gigabyte weights are
/// paged in by the OS on demand instead of being copied into managed arrays.
/// </summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _pointer;

    private MappedFile(string path, long length, MemoryMappedFile map, MemoryMappedViewAccessor view)
    {
        Path = path;
        Length = length;
        _map = map;
        _view = view;
        byte* basePointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
        // The view may start before the requested offset (page alignment).
        _pointer = basePointer + view.PointerOffset;
    }

    public string Path { get; }
    public long Length { get; }

    public byte* Pointer => _pointer != null ? _pointer : throw new ObjectDisposedException(Path);

    /// <summary>Whether bytes [offset, offset+count) lie inside the file; safe for any values (no overflow).</summary>
    public bool Holds(long offset, long count) => offset >= 0 && count >= 0 && offset <= Length && count <= Length - offset;

    /// <summary>Bytes [offset, offset+count) of the file. Callers check bounds with their own message first; this is the backstop.</summary>
    public ReadOnlySpan<byte> Span(long offset, int count) =>
        Holds(offset, count)
            ? new(Pointer + offset, count)
            : throw new CheckpointException(Path, null, $"bytes [{offset}, +{count}) lie outside the file of {Length} bytes (corrupt or truncated file)");

    public static MappedFile Open(string path)
    {
        if (RegularFile.Problem(path) is { } problem) throw new CheckpointException(path, null, problem);
        FileStream stream;
        try
        {
            // Delete sharing lets a writer replace the file by rename while we hold the old one.
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(path, null, $"cannot open file: {e.Message}", e);
        }

        long length = stream.Length;
        if (length == 0)
        {
            // An empty file cannot be mapped; callers report it as truncated.
            stream.Dispose();
            throw new CheckpointException(path, null, "file is empty");
        }

        MemoryMappedFile? map = null;
        try
        {
            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read,
                HandleInheritability.None, leaveOpen: false);
            var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            return new MappedFile(path, length, map, view);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            map?.Dispose();
            stream.Dispose();
            throw new CheckpointException(path, null, $"cannot memory-map file: {e.Message}", e);
        }
    }

    public void Dispose()
    {
        if (_pointer == null) return;
        _pointer = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
