using System.Numerics.Tensors;

namespace GptJx.Backends.Cpu;

/// <summary>
/// Causal ALiBi attention over the KV cache, in fp32. One work item is one
/// (new token, head): scores over every cached position up to the token's own,
/// a max-subtracted softmax, then the weighted sum of values.
/// </summary>
internal static unsafe class AttentionKernel
{
    public static void Run(CpuTensor qkv, CpuKvCache cache, int layer, AttentionBatch batch, float[] slopes, float scoreScale, CpuTensor output)
    {
        int width = cache.Width, heads = cache.Heads, headDim = cache.HeadDim;
        float[] rows = qkv.Data;

        // 1. Append the new keys and values to each sequence's cache slot.
        foreach (var s in batch.Active)
        {
            if (s.StartPosition + s.Length > cache.MaxPositions)
                throw new InvalidOperationException($"positions {s.StartPosition}..{s.StartPosition + s.Length - 1} exceed the cache's {cache.MaxPositions}");
            for (int i = 0; i < s.Length; i++)
            {
                var row = new ReadOnlySpan<float>(rows, (s.FirstRow + i) * 3 * width, 3 * width);
                row.Slice(width, width).CopyTo(new Span<float>(cache.Key(layer, s.Slot, s.StartPosition + i), width));
                row.Slice(2 * width, width).CopyTo(new Span<float>(cache.Value(layer, s.Slot, s.StartPosition + i), width));
            }
        }

        // 2. Each (row, head) attends over positions 0..its own.
        var sequences = batch.Sequences;
        int count = batch.Count;
        int maxKeys = 0;
        for (int i = 0; i < count; i++) maxKeys = Math.Max(maxKeys, sequences[i].StartPosition + sequences[i].Length);
        int items = batch.TotalRows * heads;
        float[] outData = output.Data;
        Parallel.For(0, items, () => new float[maxKeys], (item, _, scores) =>
        {
            int row = item / heads, h = item % heads;
            var s = FindSequence(sequences, count, row);
            int position = s.StartPosition + (row - s.FirstRow);
            float slope = slopes[h] * s.AlibiScale;
            var q = new ReadOnlySpan<float>(rows, row * 3 * width + h * headDim, headDim);
            int keys = position + 1;
            float max = float.NegativeInfinity;
            for (int j = 0; j < keys; j++)
            {
                var k = new ReadOnlySpan<float>(cache.Key(layer, s.Slot, j) + h * headDim, headDim);
                float score = TensorPrimitives.Dot(q, k) * scoreScale - slope * (position - j);
                scores[j] = score;
                if (score > max) max = score;
            }
            float sum = 0;
            for (int j = 0; j < keys; j++)
            {
                float e = MathF.Exp(scores[j] - max);
                scores[j] = e;
                sum += e;
            }
            var o = new Span<float>(outData, row * width + h * headDim, headDim);
            o.Clear();
            float inv = 1f / sum;
            for (int j = 0; j < keys; j++)
            {
                var v = new ReadOnlySpan<float>(cache.Value(layer, s.Slot, j) + h * headDim, headDim);
                TensorPrimitives.MultiplyAdd(v, scores[j] * inv, o, o);
            }
            return scores;
        }, _ => { });
    }

    private static SequenceSpan FindSequence(SequenceSpan[] sequences, int count, int row)
    {
        for (int i = 0; i < count; i++)
            if (row < sequences[i].FirstRow + sequences[i].Length) return sequences[i];
        throw new InvalidOperationException($"row {row} belongs to no sequence of the batch");
    }
}
