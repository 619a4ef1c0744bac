namespace GptJx.Checkpoints;

/// <summary>
/// The tensors of a checkpoint, whatever its file format. Bytes are served from
/// memory-mapped files, never copied whole into managed memory.
/// </summary>
public interface ITensorSource : IDisposable
{
    /// <summary>The checkpoint folder (or file) this source reads.</summary>
    string Location { get; }

    IReadOnlyCollection<TensorInfo> Tensors { get; }

    /// <summary>
    /// Tensors the checkpoint holds in an element type the engine does not compute with
    /// (integer ids, bool attention masks of old checkpoints), with the reason. They are
    /// not in <see cref="Tensors"/>; the error surfaces only if the model needs one.
    /// </summary>
    IReadOnlyDictionary<string, string> UnsupportedTensors { get; }

    bool TryGetTensor(string name, out TensorInfo info);

    /// <summary>
    /// The tensor's little-endian, row-major, contiguous bytes; valid until the
    /// source is disposed. Throws <see cref="CheckpointException"/> naming the
    /// file and tensor if the bytes cannot be served (truncated file, ...).
    /// </summary>
    TensorData Open(TensorInfo tensor);
}

/// <summary>A view of one tensor's bytes inside a mapped file.</summary>
public readonly unsafe struct TensorData
{
    public TensorData(TensorInfo info, byte* pointer)
    {
        Info = info;
        Pointer = pointer;
    }

    public TensorInfo Info { get; }
    public byte* Pointer { get; }
    public long Length => Info.ByteLength;

    /// <summary>The bytes as a span (tensors of this model are far below 2 GiB).</summary>
    public ReadOnlySpan<byte> Bytes => Length <= int.MaxValue
        ? new ReadOnlySpan<byte>(Pointer, (int)Length)
        : throw new CheckpointException(Info.File, Info.Name, $"tensor of {Length} bytes is too large for a single span");
}

/// <summary>A checkpoint problem, naming the file and (where known) the tensor.</summary>
public sealed class CheckpointException : Exception
{
    public CheckpointException(string file, string? tensor, string message, Exception? inner = null)
        : base(Format(file, tensor, message), inner)
    {
        FilePath = file;
        TensorName = tensor;
    }

    public string FilePath { get; }
    public string? TensorName { get; }

    private static string Format(string file, string? tensor, string message) =>
        tensor is null ? $"{file}: {message}" : $"{file}: tensor '{tensor}': {message}";
}
