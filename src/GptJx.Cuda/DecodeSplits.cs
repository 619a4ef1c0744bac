namespace GptJx.Cuda;

/// <summary>
/// Flash-decoding split of a context (kernels/attention_decode.cu computes the same on the device):
/// enough splits that heads x sequences x splits fill the GPU a few times over, each chunk
/// 32..256 positions long (a multiple of 32).
/// </summary>
public static class DecodeSplits
{
    public const int MaxChunk = CudaMemoryPlan.DecodeChunk;
    public const int MinChunk = 32;
    public const int BlocksPerMultiprocessor = 4;

    /// <summary>Splits to aim for: about 4 blocks per multiprocessor over all (sequence, head) pairs, at most <paramref name="maxSplits"/>.</summary>
    public static int Target(int multiprocessors, int heads, int sequences, int maxSplits)
    {
        long pairs = Math.Max(1L, (long)heads * sequences);
        long want = (BlocksPerMultiprocessor * (long)Math.Max(1, multiprocessors) + pairs - 1) / pairs;
        return (int)Math.Clamp(want, 1, Math.Max(1, maxSplits));
    }

    /// <summary>Positions per split for a context of <paramref name="keys"/> positions.</summary>
    public static int Chunk(int keys, int target)
    {
        int c = (keys + target - 1) / target;
        c = (c + 31) & ~31;
        return Math.Min(MaxChunk, Math.Max(MinChunk, c));
    }

    /// <summary>Splits a context of <paramref name="keys"/> positions uses.</summary>
    public static int Used(int keys, int target) => (keys + Chunk(keys, target) - 1) / Chunk(keys, target);
}
