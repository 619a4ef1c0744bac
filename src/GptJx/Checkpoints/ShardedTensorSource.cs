using System.Text.Json;

namespace GptJx.Checkpoints;

/// <summary>
/// A checkpoint split over several files, described by a Hugging Face index
/// (<c>model.safetensors.index.json</c> or <c>pytorch_model.bin.index.json</c>)
/// whose <c>weight_map</c> maps each tensor name to the shard file holding it.
/// The index is authoritative: only the tensors it lists are exposed.
/// </summary>
public sealed class ShardedTensorSource : ITensorSource
{
    private readonly List<ITensorSource> _shards = [];
    private readonly Dictionary<string, (TensorInfo Info, ITensorSource Shard)> _byName = new(StringComparer.Ordinal);
    private readonly List<TensorInfo> _ordered = [];

    private ShardedTensorSource(string indexPath) => Location = indexPath;

    public string Location { get; }

    public IReadOnlyCollection<TensorInfo> Tensors => _ordered;

    public IReadOnlyDictionary<string, string> UnsupportedTensors => _unsupported;

    private readonly Dictionary<string, string> _unsupported = new(StringComparer.Ordinal);

    /// <summary>Opens the index and every shard it names (each once).</summary>
    public static ShardedTensorSource Open(string indexPath)
    {
        var weightMap = ReadWeightMap(indexPath);
        string folder = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var source = new ShardedTensorSource(indexPath);
        try
        {
            var opened = new Dictionary<string, ITensorSource>(StringComparer.Ordinal);
            foreach (var (name, shardName) in weightMap)
            {
                if (!opened.TryGetValue(shardName, out var shard))
                {
                    shard = OpenShard(indexPath, folder, name, shardName);
                    opened.Add(shardName, shard);
                    source._shards.Add(shard);
                }
                if (shard.UnsupportedTensors.TryGetValue(name, out var reason))
                {
                    source._unsupported.Add(name, reason);
                    continue;
                }
                if (!shard.TryGetTensor(name, out var info))
                    throw new CheckpointException(shard.Location, name,
                        $"listed in {Path.GetFileName(indexPath)} but missing from the shard");
                source._byName.Add(name, (info, shard));
                source._ordered.Add(info);
            }
            return source;
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    private static ITensorSource OpenShard(string indexPath, string folder, string tensor, string shardName)
    {
        // Shards live next to the index; a path that climbs out of the folder is refused.
        if (shardName.Length == 0 || Path.IsPathRooted(shardName) || shardName.Contains('/') || shardName.Contains('\\'))
            throw new CheckpointException(indexPath, tensor, $"shard '{shardName}' is not a plain file name in the checkpoint folder");
        string shardPath = Path.Combine(folder, shardName);
        if (!System.IO.File.Exists(shardPath))
            throw new CheckpointException(indexPath, tensor, $"shard file '{shardName}' does not exist");
        return shardName.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
            ? SafeTensorsReader.Open(shardPath)
            : PyTorchBinReader.Open(shardPath);
    }

    private static List<(string Name, string Shard)> ReadWeightMap(string indexPath)
    {
        if (RegularFile.Problem(indexPath) is { } problem) throw new CheckpointException(indexPath, null, problem);
        byte[] bytes;
        try
        {
            bytes = System.IO.File.ReadAllBytes(indexPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(indexPath, null, $"cannot read index: {e.Message}", e);
        }

        try
        {
            using var document = JsonDocument.Parse(bytes);
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out var map)
                || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointException(indexPath, null, "index has no \"weight_map\" object");
            if (JsonText.FindInvalid(map) is { } bad)
                throw new CheckpointException(indexPath, null, $"weight_map: {bad.Describe()} is not valid text (invalid UTF-8 or an unpaired surrogate escape)");
            var result = new List<(string, string)>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new CheckpointException(indexPath, entry.Name, "weight_map value is not a shard file name");
                if (!seen.Add(entry.Name))
                    throw new CheckpointException(indexPath, entry.Name, "listed twice in weight_map");
                result.Add((entry.Name, entry.Value.GetString()!));
            }
            if (result.Count == 0)
                throw new CheckpointException(indexPath, null, "weight_map is empty");
            return result;
        }
        catch (JsonException e)
        {
            throw new CheckpointException(indexPath, null, $"index is not valid JSON: {e.Message}", e);
        }
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
        return entry.Shard.Open(entry.Info);
    }

    public void Dispose()
    {
        foreach (var shard in _shards) shard.Dispose();
        _shards.Clear();
    }
}
