using System.Text;
using GptJx.Tensors;

namespace GptJx.Checkpoints;

/// <summary>
/// Reads a <c>pytorch_model.bin</c> as written by torch.save since PyTorch 1.6:
/// a zip archive whose <c>{archive}/data.pkl</c> pickles the state dict and
/// whose <c>{archive}/data/{key}</c> members hold the storages, uncompressed.
/// Tensors point straight into the mapped archive.
/// </summary>
public sealed class PyTorchBinReader : MappedTensorSource
{
    private PyTorchBinReader(string path) : base(path) { }

    public static PyTorchBinReader Open(string path)
    {
        var reader = new PyTorchBinReader(path);
        try
        {
            reader.Attach(MappedFile.Open(path));
            reader.ReadArchive();
            return reader;
        }
        catch
        {
            reader.Dispose();
            throw;
        }
    }

    private void ReadArchive()
    {
        string path = Location;
        if (File.Length < 4 || File.Span(0, 2) is not [(byte)'P', (byte)'K'])
        {
            // Before 1.6, torch.save wrote a bare pickle stream (it starts with PROTO, 0x80).
            string why = File.Span(0, 1)[0] == 0x80
                ? "this is the legacy (pre-1.6) torch.save format, which is not supported; re-save it with a newer PyTorch or convert it to safetensors"
                : "not a zip archive (a PyTorch checkpoint written by torch.save starts with 'PK')";
            throw new CheckpointException(path, null, why);
        }

        var entries = ZipDirectory.Read(File);
        if (entries.Count == 0) throw new CheckpointException(path, null, "zip archive is empty");

        // The top folder is named after the file torch.save was given ("archive",
        // "pytorch_model", ...); every member shares it.
        int slash = entries[0].Name.IndexOf('/');
        if (slash <= 0) throw new CheckpointException(path, null, $"zip member '{entries[0].Name}' is not inside an archive folder");
        string prefix = entries[0].Name[..(slash + 1)];
        var byName = new Dictionary<string, ZipEntry>(StringComparer.Ordinal);
        foreach (var entry in entries) byName.TryAdd(entry.Name, entry);

        if (byName.TryGetValue(prefix + "byteorder", out var byteOrder)
            && Encoding.ASCII.GetString(Member(byteOrder, null)).Trim() != "little")
            throw new CheckpointException(path, null, "big-endian checkpoints are not supported");

        if (!byName.TryGetValue(prefix + "data.pkl", out var pickleEntry))
            throw new CheckpointException(path, null, $"zip archive has no '{prefix}data.pkl' (not a torch.save checkpoint?)");
        var tensors = TorchUnpickler.ReadStateDict(path, Member(pickleEntry, null).ToArray());

        foreach (var (name, tensor) in tensors)
            if (tensor.Storage.DType is null)
                AddUnsupported(name, $"unsupported dtype: storage type '{tensor.Storage.TypeName}' (supported: torch.FloatStorage, torch.HalfStorage, torch.BFloat16Storage)");
            else Add(new TensorInfo(name, CheckDType(name, tensor), tensor.Shape, path), StorageOffset(byName, prefix, name, tensor));
    }

    private DType CheckDType(string name, TorchTensor tensor) =>
        tensor.Storage.DType ?? throw new CheckpointException(Location, name,
            $"unsupported dtype: storage type '{tensor.Storage.TypeName}' (supported: torch.FloatStorage, torch.HalfStorage, torch.BFloat16Storage)");

    /// <summary>Where the tensor's first byte lies in the file, after checking layout and bounds.</summary>
    private long StorageOffset(Dictionary<string, ZipEntry> byName, string prefix, string name, TorchTensor tensor)
    {
        CheckpointException Bad(string why) => new(Location, name, why);
        DType dtype = CheckDType(name, tensor);
        long[] shape = tensor.Shape, stride = tensor.Stride;

        if (shape.Length > TensorInfo.MaxRank) throw Bad($"has {shape.Length} dimensions; at most {TensorInfo.MaxRank} are supported");
        if (shape.Any(d => d < 0)) throw Bad($"negative size [{string.Join(", ", shape)}]");
        long elements, storageBytes;
        try
        {
            // Row-major contiguity; a dimension of size 1 may carry any stride, as in torch (and an empty tensor any strides).
            bool empty = shape.Contains(0);
            elements = 1;
            for (int i = shape.Length - 1; i >= 0; i--)
            {
                if (shape[i] != 1 && stride[i] != elements && !empty)
                    throw Bad($"tensor is not contiguous (size [{string.Join(", ", shape)}], stride [{string.Join(", ", stride)}]); save it with .contiguous()");
                elements = checked(elements * shape[i]);
            }
            storageBytes = checked(tensor.Storage.ElementCount * dtype.Size());
            _ = checked(tensor.StorageOffset + elements);
        }
        catch (OverflowException)
        {
            throw Bad($"size [{string.Join(", ", shape)}] or its storage is too large");
        }

        string memberName = prefix + "data/" + tensor.Storage.Key;
        if (!byName.TryGetValue(memberName, out var member))
            throw Bad($"its storage '{memberName}' is missing from the archive");
        if (member.Method != 0)
            throw Bad($"zip member '{memberName}' is compressed (method {member.Method}); torch.save stores tensor data uncompressed, so this archive was re-packed and cannot be memory-mapped");
        if (member.Size < storageBytes)
            throw Bad($"storage '{memberName}' holds {member.Size} bytes but {tensor.Storage.ElementCount} {dtype.Name()} elements need {storageBytes} (truncated file?)");
        if (tensor.StorageOffset < 0 || tensor.StorageOffset + elements > tensor.Storage.ElementCount)
            throw Bad($"elements [{tensor.StorageOffset}, {tensor.StorageOffset + elements}) lie outside its storage of {tensor.Storage.ElementCount}");
        return member.DataOffset + tensor.StorageOffset * dtype.Size();
    }

    private ReadOnlySpan<byte> Member(ZipEntry entry, string? tensor)
    {
        if (entry.Method != 0)
            throw new CheckpointException(Location, tensor, $"zip member '{entry.Name}' is compressed (method {entry.Method}); only stored members are supported");
        if (entry.Size > int.MaxValue)
            throw new CheckpointException(Location, tensor, $"zip member '{entry.Name}' is too large");
        return File.Span(entry.DataOffset, (int)entry.Size);
    }
}
