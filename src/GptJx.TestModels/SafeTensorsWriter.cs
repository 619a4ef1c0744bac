using System.Buffers.Binary;
using System.Text.Json;

namespace GptJx.TestModels;

/// <summary>Writes one .safetensors file: header from the specs, then each tensor's bytes in order.</summary>
internal static class SafeTensorsWriter
{
    public static void Write(Stream stream, IReadOnlyList<TensorSpec> tensors, TensorStreamer streamer)
    {
        byte[] header = Header(tensors);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        foreach (var tensor in tensors)
        {
            stream.Write(streamer.Produce(tensor));
            streamer.Written(tensor.ByteLength);
        }
    }

    private static byte[] Header(IReadOnlyList<TensorSpec> tensors)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            // Hugging Face loaders check this tag to know the tensors are PyTorch-shaped.
            json.WriteStartObject("__metadata__");
            json.WriteString("format", "pt");
            json.WriteEndObject();
            long offset = 0;
            foreach (var tensor in tensors)
            {
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", tensor.DType switch
                {
                    Tensors.DType.F32 => "F32",
                    Tensors.DType.F16 => "F16",
                    _ => "BF16",
                });
                json.WriteStartArray("shape");
                foreach (long dim in tensor.Shape) json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset += tensor.ByteLength;
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        // Pad with spaces so the data section starts 8-byte aligned, as the format recommends.
        while ((8 + buffer.Length) % 8 != 0) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }
}
