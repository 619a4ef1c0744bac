using GptJx.Backends;
using GptJx.Backends.Cpu;
using GptJx.Tests.Model;

namespace GptJx.Tests.Backends;

/// <summary>The CPU backend end to end: every kernel level against the golden reference, batched decode, steady-state allocation.</summary>
public class CpuBackendModelTests
{
    public static IEnumerable<KernelLevel> Levels() => Enum.GetValues<KernelLevel>().Where(l => l <= Gemm.Best);

    [Test]
    public void EveryKernelLevelMatchesTheReference([ValueSource(nameof(Levels))] KernelLevel level)
    {
        string fixture = GoldenTests.CacheableFixtures().First();
        var golden = GoldenFixtures.Read(fixture);
        using var model = GptJxModel.Load(TestPaths.Golden(fixture), new CpuBackend { Level = level });
        var logits = GoldenFixtures.AllLogits(model, golden.InputIds);
        int v = model.VocabularySize;
        for (int t = 0; t < golden.InputIds.Length; t++)
            for (int i = 0; i < v; i++)
            {
                double expected = golden.Logits[t][i];
                double scale = golden.Logits[t].Max(Math.Abs);
                Assert.That(logits[t * v + i], Is.EqualTo(expected).Within(1e-4 * scale), $"{level}: position {t}, logit {i}");
            }
    }

    /// <summary>B sequences decoded together in B slots of one cache give each sequence's own logits.</summary>
    [Test]
    public void BatchedDecodeMatchesSequencesAlone()
    {
        using var model = TestModels.LoadSmall();
        int v = model.VocabularySize, layers = model.Config.Layers;
        int[][] prompts = [[10, 20, 30], [7], [100, 200, 300, 400, 500]];
        const int steps = 4;

        // Alone.
        var alone = new float[prompts.Length][];
        for (int s = 0; s < prompts.Length; s++)
        {
            using var seq = model.CreateSequence(16);
            var logits = new float[v];
            seq.Append(prompts[s], logits);
            for (int step = 0; step < steps; step++) seq.Append([step + 1 + s], logits);
            alone[s] = logits;
        }

        // Together: prompts first (two in one call), then one row per sequence per step.
        using var cache = model.Backend.CreateKvCache(layers, prompts.Length, 16, model.Config.Heads, model.Config.HeadDim);
        var batch = new AttentionBatch(prompts.Length);
        batch.Add(0, 0, prompts[0].Length);
        batch.Add(1, 0, prompts[1].Length);
        model.Forward([.. prompts[0], .. prompts[1]], batch, cache, ReadOnlySpan<int>.Empty, new float[v]);
        batch.Clear();
        batch.Add(2, 0, prompts[2].Length);
        model.Forward(prompts[2], batch, cache, ReadOnlySpan<int>.Empty, new float[v]);
        var together = new float[prompts.Length * v];
        for (int step = 0; step < steps; step++)
        {
            batch.Clear();
            for (int s = 0; s < prompts.Length; s++) batch.Add(s, prompts[s].Length + step, 1);
            model.Forward([step + 1, step + 2, step + 3], batch, cache, [0, 1, 2], together);
        }
        for (int s = 0; s < prompts.Length; s++)
            for (int i = 0; i < v; i++)
                Assert.That(together[s * v + i], Is.EqualTo(alone[s][i]).Within(1e-4 * (1 + Math.Abs(alone[s][i]))), $"sequence {s}, logit {i}");
    }

    /// <summary>Once warm, a decode step allocates nothing on any thread.</summary>
    [Test]
    public void SteadyDecodeAllocatesNothing()
    {
        using var model = TestModels.LoadSmall();
        using var sequence = model.CreateSequence(64);
        var logits = new float[model.VocabularySize];
        sequence.Append([1, 2, 3, 4], logits);
        var token = new int[1];
        for (int i = 0; i < 8; i++) { token[0] = i + 5; sequence.Append(token, logits); }
        long thread = GC.GetAllocatedBytesForCurrentThread();
        long total = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = 0; i < 40; i++) { token[0] = 100 + i; sequence.Append(token, logits); }
        long threadDelta = GC.GetAllocatedBytesForCurrentThread() - thread;
        long totalDelta = GC.GetTotalAllocatedBytes(precise: true) - total;
        Assert.That(threadDelta, Is.Zero, "bytes allocated by the decoding thread over 40 steps");
        Assert.That(totalDelta, Is.LessThan(4096), "bytes allocated by all threads over 40 steps (the pool's workers allocate nothing; the rest is the test host)");
    }
}
