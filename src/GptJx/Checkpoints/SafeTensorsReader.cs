using System.Buffers.Binary;
using System.Text.Json;
using GptJx.Tensors;

namespace GptJx.Checkpoints;

/// <summary>
/// Reads one .safetensors file: an 8-byte little-endian header length, a JSON
/// header mapping tensor names to dtype, shape and [begin, end) byte offsets
/// relative to the end of the header, then the raw tensor bytes.
/// </summary>
public sealed class SafeTensorsReader : MappedTensorSource
{
    // The reference implementation refuses headers above 100 MB; so do we, so
    // that a corrupt length cannot make us copy gigabytes into a string.
    private const long MaxHeaderBytes = 100_000_000;

    private SafeTensorsReader(string path) : base(path) { }

    public static SafeTensorsReader Open(string path)
    {
        var reader = new SafeTensorsReader(path);
        try
        {
            reader.Attach(MappedFile.Open(path));
            reader.ReadHeader();
            return reader;
        }
        catch
        {
            reader.Dispose();
            throw;
        }
    }

    private void ReadHeader()
    {
        string path = Location;
        long fileLength = File.Length;
        if (fileLength < 8)
            throw new CheckpointException(path, null, $"file is {fileLength} bytes, too short for the 8-byte header length (truncated file?)");

        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(File.Span(0, 8));
        if (headerLength > MaxHeaderBytes)
            throw new CheckpointException(path, null, $"header length {headerLength} is larger than the {MaxHeaderBytes}-byte limit (not a safetensors file?)");
        if (8 + (long)headerLength > fileLength)
            throw new CheckpointException(path, null, $"header length {headerLength} runs beyond the end of the file of {fileLength} bytes (truncated file?)");

        long dataStart = 8 + (long)headerLength;
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.Span(8, (int)headerLength).ToArray());
        }
        catch (JsonException e)
        {
            throw new CheckpointException(path, null, $"header is not valid JSON: {e.Message}", e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointException(path, null, "header is not a JSON object");
            if (JsonText.FindInvalid(document.RootElement) is { } bad)
                throw new CheckpointException(path, null, $"header: {bad.Describe()} is not valid text (invalid UTF-8 or an unpaired surrogate escape)");
            long dataLength = fileLength - dataStart;
            var extents = new List<(long Begin, long End, string Name)>();
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__") continue; // free-form strings, not needed to load
                var (begin, end) = ReadOffsets(path, property.Name, property.Value, dataLength);
                extents.Add((begin, end, property.Name));
                if (UnsupportedDType(property.Value) is string reason)
                {
                    AddUnsupported(property.Name, reason);
                    continue;
                }
                var info = ParseEntry(path, property.Name, property.Value, begin, end);
                Add(info, dataStart + begin);
            }
            CheckTiling(path, extents, dataLength);
        }
    }

    /// <summary>
    /// As the reference implementation requires, the tensors tile the data section exactly:
    /// no two share a byte and no byte belongs to none (holes could smuggle other content into
    /// the file; overlaps alias one tensor's bytes as another's).
    /// </summary>
    private static void CheckTiling(string path, List<(long Begin, long End, string Name)> extents, long dataLength)
    {
        extents.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long covered = 0;
        string? previous = null;
        foreach (var (begin, end, name) in extents)
        {
            if (begin < covered)
                throw new CheckpointException(path, name, $"data_offsets [{begin}, {end}] overlap tensor '{previous}', which ends at {covered}");
            if (begin > covered)
                throw new CheckpointException(path, name, $"data_offsets [{begin}, {end}] leave bytes [{covered}, {begin}) of the data section in no tensor (a hole)");
            covered = end;
            previous = name;
        }
        if (covered != dataLength)
            throw new CheckpointException(path, previous, $"the data section has {dataLength - covered} bytes after the last tensor's end at {covered} that belong to no tensor");
    }

    private static string? UnsupportedDType(JsonElement entry) =>
        entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty("dtype", out var d) && d.ValueKind == JsonValueKind.String
            && d.GetString() is not ("F32" or "F16" or "BF16")
            ? $"unsupported dtype '{d.GetString()}' (supported: F32, F16, BF16)"
            : null;

    /// <summary>An entry's [begin, end) inside the data section, checked to be an increasing pair within it.</summary>
    private static (long Begin, long End) ReadOffsets(string path, string name, JsonElement entry, long dataLength)
    {
        if (entry.ValueKind != JsonValueKind.Object) throw new CheckpointException(path, name, "header entry is not a JSON object");
        if (!entry.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array
            || offsets.GetArrayLength() != 2
            || offsets[0].ValueKind != JsonValueKind.Number || !offsets[0].TryGetInt64(out long begin)
            || offsets[1].ValueKind != JsonValueKind.Number || !offsets[1].TryGetInt64(out long end))
            throw new CheckpointException(path, name, "header entry has no \"data_offsets\" pair of integers");
        if (begin < 0 || end < begin)
            throw new CheckpointException(path, name, $"data_offsets [{begin}, {end}] are not an increasing pair of non-negative offsets");
        if (end > dataLength)
            throw new CheckpointException(path, name, $"data_offsets [{begin}, {end}] run beyond the {dataLength} data bytes in the file (truncated file?)");
        return (begin, end);
    }

    /// <summary>Validates one header entry's type and shape against the bytes its offsets span.</summary>
    private static TensorInfo ParseEntry(string path, string name, JsonElement entry, long begin, long end)
    {
        CheckpointException Bad(string why) => new(path, name, why);

        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Bad("header entry has no \"dtype\" string");
        string dtypeText = dtypeElement.GetString()!;
        DType dtype = dtypeText switch
        {
            "F32" => DType.F32,
            "F16" => DType.F16,
            "BF16" => DType.BF16,
            _ => throw Bad($"unsupported dtype '{dtypeText}' (supported: F32, F16, BF16)"),
        };

        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw Bad("header entry has no \"shape\" array");
        if (shapeElement.GetArrayLength() > TensorInfo.MaxRank)
            throw Bad($"shape has {shapeElement.GetArrayLength()} dimensions; at most {TensorInfo.MaxRank} are supported");
        var shape = new long[shapeElement.GetArrayLength()];
        int i = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long value) || value < 0)
                throw Bad($"shape {shapeElement.GetRawText()} is not a list of non-negative integers");
            shape[i++] = value;
        }

        long expected;
        try
        {
            expected = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * dtype.Size());
        }
        catch (OverflowException)
        {
            throw Bad($"shape {shapeElement.GetRawText()} is too large");
        }
        if (end - begin != expected)
            throw Bad($"data_offsets [{begin}, {end}] span {end - begin} bytes but {dtypeText} {shapeElement.GetRawText()} needs {expected}");

        return new TensorInfo(name, dtype, shape, path);
    }
}
