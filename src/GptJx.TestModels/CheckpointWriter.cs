using System.Text.Json;

namespace GptJx.TestModels;

/// <summary>
/// Writes checkpoints (test models, up to the full-size one) tensor by tensor
/// with memory bounded by the largest tensor. Every file is written under a
/// temporary name and renamed only when all of them are complete, the entry
/// file (the one <see cref="Checkpoints.CheckpointLoader"/> looks for) last, so a failed
/// write never leaves a half checkpoint under the final names.
/// </summary>
public static class CheckpointWriter
{
    /// <summary>Writes the tensors and returns the path of the checkpoint's entry file.</summary>
    /// <param name="fill">Writes a tensor's little-endian bytes into the (zeroed) span it is given.</param>
    /// <param name="bytesWritten">Receives the running total of tensor bytes written.</param>
    /// <param name="shardBytes">For <see cref="CheckpointFormat.Sharded"/>: the most tensor bytes per shard
    /// (a larger tensor gets a shard of its own).</param>
    public static string Write(string directory, CheckpointFormat format, IReadOnlyList<TensorSpec> tensors,
        Action<TensorSpec, Span<byte>> fill, IProgress<long>? bytesWritten = null, long shardBytes = 2L << 30)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(fill);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(shardBytes, 0);
        Validate(tensors);

        Directory.CreateDirectory(directory);
        var streamer = new TensorStreamer(tensors, fill, bytesWritten);
        var staged = new StagedFiles();
        try
        {
            string entry;
            switch (format)
            {
                case CheckpointFormat.SafeTensors:
                    entry = Path.Combine(directory, "model.safetensors");
                    staged.Write(entry, s => SafeTensorsWriter.Write(s, tensors, streamer));
                    break;
                case CheckpointFormat.PyTorchBin:
                    entry = Path.Combine(directory, "pytorch_model.bin");
                    staged.Write(entry, s => PyTorchBinWriter.Write(s, tensors, streamer));
                    break;
                case CheckpointFormat.Sharded:
                    entry = Path.Combine(directory, "model.safetensors.index.json");
                    WriteSharded(directory, entry, tensors, streamer, staged, shardBytes);
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(format));
            }
            staged.Commit();
            return entry;
        }
        catch
        {
            staged.Abandon();
            throw;
        }
    }

    private static void Validate(IReadOnlyList<TensorSpec> tensors)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (string.IsNullOrEmpty(t.Name) || t.Name == "__metadata__")
                throw new ArgumentException($"invalid tensor name '{t.Name}'", nameof(tensors));
            if (!names.Add(t.Name))
                throw new ArgumentException($"tensor '{t.Name}' appears twice", nameof(tensors));
            if (t.Shape.Any(d => d < 0))
                throw new ArgumentException($"tensor '{t.Name}' has a negative dimension", nameof(tensors));
        }
    }

    private static void WriteSharded(string directory, string indexPath, IReadOnlyList<TensorSpec> tensors,
        TensorStreamer streamer, StagedFiles staged, long shardBytes)
    {
        // Greedy packing in the given order, as transformers' shard_checkpoint does.
        var shards = new List<List<TensorSpec>>();
        long current = 0;
        foreach (var t in tensors)
        {
            if (shards.Count == 0 || (current + t.ByteLength > shardBytes && shards[^1].Count > 0))
            {
                shards.Add([]);
                current = 0;
            }
            shards[^1].Add(t);
            current += t.ByteLength;
        }
        if (shards.Count == 0) shards.Add([]);

        var weightMap = new List<(string Tensor, string File)>();
        for (int i = 0; i < shards.Count; i++)
        {
            string name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            var shard = shards[i];
            staged.Write(Path.Combine(directory, name), s => SafeTensorsWriter.Write(s, shard, streamer));
            weightMap.AddRange(shard.Select(t => (t.Name, name)));
        }

        staged.Write(indexPath, s =>
        {
            using var json = new Utf8JsonWriter(s, new JsonWriterOptions { Indented = true });
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", tensors.Sum(t => t.ByteLength));
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (var (tensor, file) in weightMap) json.WriteString(tensor, file);
            json.WriteEndObject();
            json.WriteEndObject();
        });
    }

    /// <summary>Files written under temporary names, renamed in order on commit, deleted on failure.</summary>
    private sealed class StagedFiles
    {
        private readonly List<(string Temp, string Final)> _files = [];

        public void Write(string finalPath, Action<Stream> write)
        {
            string temp = $"{finalPath}.{Guid.NewGuid():N}.partial";
            _files.Add((temp, finalPath));
            using var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 20);
            write(stream);
            stream.Flush(flushToDisk: false);
        }

        public void Commit()
        {
            foreach (var (temp, final) in _files) File.Move(temp, final, overwrite: true);
            _files.Clear();
        }

        public void Abandon()
        {
            foreach (var (temp, _) in _files)
            {
                try { File.Delete(temp); }
                catch (IOException) { /* best effort: the original error matters more */ }
            }
            _files.Clear();
        }
    }
}
