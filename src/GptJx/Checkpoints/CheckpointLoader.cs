namespace GptJx.Checkpoints;

/// <summary>Finds and opens the weights of a Hugging Face style checkpoint.</summary>
public static class CheckpointLoader
{
    /// <summary>The file names looked for in a checkpoint folder, in order of preference.</summary>
    public static IReadOnlyList<string> WeightFileNames { get; } =
    [
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ];

    /// <summary>
    /// Opens a checkpoint folder (picking the first weights file of
    /// <see cref="WeightFileNames"/> it holds) or one weights file given directly.
    /// </summary>
    public static ITensorSource Open(string path)
    {
        if (Directory.Exists(path))
        {
            foreach (var name in WeightFileNames)
            {
                string candidate = Path.Combine(path, name);
                if (File.Exists(candidate)) return OpenFile(candidate);
            }
            throw new CheckpointException(path, null,
                $"no weights found: looked for {string.Join(", ", WeightFileNames)}");
        }
        if (File.Exists(path)) return OpenFile(path);
        throw new CheckpointException(path, null, "no such file or folder");
    }

    private static ITensorSource OpenFile(string file)
    {
        if (RegularFile.Problem(file) is { } problem) throw new CheckpointException(file, null, problem);
        string name = Path.GetFileName(file);
        if (name.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)) return ShardedTensorSource.Open(file);
        if (name.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) return SafeTensorsReader.Open(file);
        return LooksLikeTorch(file) ? PyTorchBinReader.Open(file) : SafeTensorsReader.Open(file);
    }

    /// <summary>
    /// torch.save archives start with a zip local header ("PK"), legacy torch
    /// files with a pickle PROTO (0x80); safetensors start with a length. Torch
    /// file extensions also go to the torch reader, whose errors explain more.
    /// </summary>
    private static bool LooksLikeTorch(string file)
    {
        try
        {
            using var stream = File.OpenRead(file);
            Span<byte> magic = stackalloc byte[2];
            int read = stream.ReadAtLeast(magic, 2, throwOnEndOfStream: false);
            if (read == 2 && magic is [(byte)'P', (byte)'K']) return true;
            if (read >= 1 && magic[0] == 0x80) return true;
            return Path.GetExtension(file).ToLowerInvariant() is ".bin" or ".pt" or ".pth";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(file, null, $"cannot open file: {e.Message}", e);
        }
    }
}
