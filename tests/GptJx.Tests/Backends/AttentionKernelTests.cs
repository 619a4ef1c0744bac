using GptJx.Backends;
using GptJx.Backends.Cpu;

namespace GptJx.Tests.Backends;

/// <summary>The CPU attention (both the head-width-80 AVX-512 path and the portable one) against a direct computation.</summary>
public class AttentionKernelTests
{
    [TestCase(80, 2), TestCase(16, 3), TestCase(80, 1)]
    public void MatchesDirectCausalAlibiSoftmax(int headDim, int heads)
    {
        int width = heads * headDim;
        int[] lengths = [7, 3, 1];
        int rows = lengths.Sum();
        var random = new Random(headDim + heads);
        using var backend = new CpuBackend();
        var qkv = (CpuTensor)backend.Allocate(rows, 3 * width, GptJx.Tensors.DType.F32);
        for (int i = 0; i < qkv.Data.Length; i++) qkv.Data[i] = (float)(random.NextDouble() * 2 - 1);
        var output = (CpuTensor)backend.Allocate(rows, width, GptJx.Tensors.DType.F32);
        using var cache = backend.CreateKvCache(1, lengths.Length, 16, heads, headDim);
        var batch = new AttentionBatch(lengths.Length);
        for (int s = 0; s < lengths.Length; s++) batch.Add(s, 0, lengths[s], alibiScale: s == 2 ? 0.5f : 1f);
        float[] slopes = Enumerable.Range(0, heads).Select(h => MathF.Pow(2, -8f * (h + 1) / heads)).ToArray();
        const float scoreScale = 0.0125f;
        backend.Attention(qkv, cache, 0, batch, slopes, scoreScale, output);

        foreach (var s in batch.Active)
            for (int i = 0; i < s.Length; i++)
                for (int h = 0; h < heads; h++)
                {
                    int row = s.FirstRow + i;
                    var scores = new double[i + 1];
                    for (int j = 0; j <= i; j++)
                    {
                        double dot = 0;
                        for (int d = 0; d < headDim; d++)
                            dot += (double)qkv.Data[row * 3 * width + h * headDim + d] * qkv.Data[(s.FirstRow + j) * 3 * width + width + h * headDim + d];
                        scores[j] = dot * scoreScale - slopes[h] * s.AlibiScale * (i - j);
                    }
                    double max = scores.Max();
                    var p = scores.Select(x => Math.Exp(x - max)).ToArray();
                    double sum = p.Sum();
                    for (int d = 0; d < headDim; d++)
                    {
                        double expected = 0;
                        for (int j = 0; j <= i; j++) expected += p[j] / sum * qkv.Data[(s.FirstRow + j) * 3 * width + 2 * width + h * headDim + d];
                        Assert.That(output.Data[row * width + h * headDim + d], Is.EqualTo(expected).Within(1e-5), $"sequence at row {s.FirstRow}, token {i}, head {h}, dim {d}");
                    }
                }
    }
}
