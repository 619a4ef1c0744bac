using System.Buffers.Binary;
using System.Text;
using GptJx.Tensors;

namespace GptJx.TestModels;

/// <summary>One tensor as a torch.save state dict describes it.</summary>
internal sealed record PickledTensor(string Name, DType DType, string StorageKey, long StorageElements,
    long StorageOffset, long[] Shape, long[] Stride)
{
    /// <summary>A tensor that alone fills its own storage, laid out row-major.</summary>
    public static PickledTensor Contiguous(string name, DType dtype, string key, long[] shape)
    {
        var stride = new long[shape.Length];
        long step = 1;
        for (int i = shape.Length - 1; i >= 0; i--) { stride[i] = step; step *= shape[i]; }
        return new PickledTensor(name, dtype, key, step, 0, shape, stride);
    }
}

/// <summary>
/// Writes the <c>data.pkl</c> of a torch.save archive: a protocol-2 pickle of an
/// OrderedDict whose values are <c>torch._utils._rebuild_tensor_v2</c> calls on
/// typed storages named by persistent ids, which is what torch.save emits for a
/// state dict and what torch.load (and <see cref="Checkpoints.TorchUnpickler"/>) reads.
/// </summary>
internal static class TorchPickleWriter
{
    public static byte[] Write(IReadOnlyList<PickledTensor> tensors)
    {
        var o = new MemoryStream();
        o.Write([0x80, 2]);                                   // PROTO 2
        Global(o, "collections", "OrderedDict");
        o.Write([(byte)'q', 0]);                              // BINPUT 0: reused for backward_hooks
        o.Write([(byte)')', (byte)'R']);                      // OrderedDict()
        if (tensors.Count > 0)
        {
            o.WriteByte((byte)'(');                           // MARK for SETITEMS
            bool rebuildMemoized = false;
            foreach (var t in tensors)
            {
                String(o, t.Name);
                if (rebuildMemoized) o.Write([(byte)'h', 1]); // BINGET 1
                else
                {
                    Global(o, "torch._utils", "_rebuild_tensor_v2");
                    o.Write([(byte)'q', 1]);
                    rebuildMemoized = true;
                }
                o.WriteByte((byte)'(');                       // MARK: arguments
                o.WriteByte((byte)'(');                       // MARK: persistent id
                String(o, "storage");
                Global(o, "torch", StorageType(t.DType));
                String(o, t.StorageKey);
                String(o, "cpu");
                Int(o, t.StorageElements);
                o.Write([(byte)'t', (byte)'Q']);              // TUPLE, BINPERSID
                Int(o, t.StorageOffset);
                Tuple(o, t.Shape);
                Tuple(o, t.Stride);
                o.WriteByte(0x89);                            // requires_grad = False
                o.Write([(byte)'h', 0, (byte)')', (byte)'R']); // backward_hooks = OrderedDict()
                o.Write([(byte)'t', (byte)'R']);              // TUPLE, REDUCE
            }
            o.WriteByte((byte)'u');                           // SETITEMS
        }
        o.WriteByte((byte)'.');                               // STOP
        return o.ToArray();
    }

    public static string StorageType(DType dtype) => dtype switch
    {
        DType.F32 => "FloatStorage",
        DType.F16 => "HalfStorage",
        DType.BF16 => "BFloat16Storage",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    private static void Global(Stream o, string module, string name)
    {
        o.WriteByte((byte)'c');
        o.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
    }

    private static void String(Stream o, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)bytes.Length);
        o.WriteByte((byte)'X');                               // BINUNICODE
        o.Write(length);
        o.Write(bytes);
    }

    private static void Int(Stream o, long value)
    {
        Span<byte> b = stackalloc byte[9];
        if (value is >= 0 and < 256) o.Write([(byte)'K', (byte)value]);
        else if (value is >= 0 and < 65536) { b[0] = (byte)'M'; BinaryPrimitives.WriteUInt16LittleEndian(b[1..], (ushort)value); o.Write(b[..3]); }
        else if (value is >= int.MinValue and <= int.MaxValue) { b[0] = (byte)'J'; BinaryPrimitives.WriteInt32LittleEndian(b[1..], (int)value); o.Write(b[..5]); }
        else { o.Write([0x8a, 8]); BinaryPrimitives.WriteInt64LittleEndian(b, value); o.Write(b[..8]); } // LONG1, 8 bytes
    }

    private static void Tuple(Stream o, long[] values)
    {
        if (values.Length == 0) { o.WriteByte((byte)')'); return; }
        if (values.Length > 3) o.WriteByte((byte)'(');
        foreach (long v in values) Int(o, v);
        o.WriteByte(values.Length switch { 1 => 0x85, 2 => 0x86, 3 => 0x87, _ => (byte)'t' });
    }
}
