namespace GptJx.Checkpoints;

/// <summary>
/// Shared plumbing of the single-file readers: a table of tensors, each a byte
/// offset into one mapped file. Subclasses parse their format and fill the table;
/// every entry has been bounds-checked against its file before it is added.
/// </summary>
public abstract unsafe class MappedTensorSource : ITensorSource
{
    private readonly Dictionary<string, (TensorInfo Info, long Offset)> _byName = new(StringComparer.Ordinal);
    private readonly List<TensorInfo> _ordered = [];
    private MappedFile? _file;

    private protected MappedTensorSource(string location) => Location = location;

    public string Location { get; }

    public IReadOnlyCollection<TensorInfo> Tensors => _ordered;

    public IReadOnlyDictionary<string, string> UnsupportedTensors => _unsupported;

    private readonly Dictionary<string, string> _unsupported = new(StringComparer.Ordinal);

    private protected void AddUnsupported(string name, string reason) => _unsupported.TryAdd(name, reason);

    private protected MappedFile File => _file ?? throw new ObjectDisposedException(Location);

    /// <summary>Takes ownership of the mapped file (released on Dispose).</summary>
    private protected void Attach(MappedFile file) => _file = file;

    private protected void Add(TensorInfo info, long offset)
    {
        if (!File.Holds(offset, info.ByteLength))
            throw new CheckpointException(info.File, info.Name,
                $"bytes [{offset}, +{info.ByteLength}) lie outside the file of {File.Length} bytes (truncated file?)");
        if (!_byName.TryAdd(info.Name, (info, offset)))
            throw new CheckpointException(info.File, info.Name, "tensor name appears twice");
        _ordered.Add(info);
    }

    public bool TryGetTensor(string name, out TensorInfo info)
    {
        if (_byName.TryGetValue(name, out var entry))
        {
            info = entry.Info;
            return true;
        }
        info = null!;
        return false;
    }

    public TensorData Open(TensorInfo tensor)
    {
        if (!_byName.TryGetValue(tensor.Name, out var entry))
            throw new CheckpointException(Location, tensor.Name, "no such tensor in this checkpoint");
        return new TensorData(entry.Info, File.Pointer + entry.Offset);
    }

    public void Dispose()
    {
        _file?.Dispose();
        _file = null;
        GC.SuppressFinalize(this);
    }
}
