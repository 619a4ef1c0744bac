namespace GptJx.TestModels;

/// <summary>
/// Produces tensor bytes for the writers with bounded memory: one buffer the
/// size of the largest tensor, refilled by the caller's fill callback for each
/// tensor in turn, with progress counted in bytes written.
/// </summary>
internal sealed class TensorStreamer
{
    private readonly byte[] _buffer;
    private readonly Action<TensorSpec, Span<byte>> _fill;
    private readonly IProgress<long>? _progress;
    private long _written;

    public TensorStreamer(IReadOnlyList<TensorSpec> tensors, Action<TensorSpec, Span<byte>> fill, IProgress<long>? progress)
    {
        long largest = tensors.Count == 0 ? 0 : tensors.Max(t => t.ByteLength);
        if (largest > Array.MaxLength)
            throw new ArgumentException($"tensor of {largest} bytes is too large to write", nameof(tensors));
        _buffer = new byte[largest];
        _fill = fill;
        _progress = progress;
    }

    /// <summary>Fills the tensor's bytes (zeroed first, so a partial fill never leaks the previous tensor).</summary>
    public ReadOnlySpan<byte> Produce(TensorSpec tensor)
    {
        var span = _buffer.AsSpan(0, (int)tensor.ByteLength);
        span.Clear();
        _fill(tensor, span);
        return span;
    }

    public void Written(long bytes)
    {
        _written += bytes;
        _progress?.Report(_written);
    }
}
