using GptJx.Backends;
using GptJx.Cuda;

namespace GptJx.Cuda.Tests;

/// <summary>Pure functions behind launches and replays: checked without a GPU.</summary>
public class ReplayCheckTests
{
    private static SequenceSpan[] Batch(params (int Slot, int Start)[] seqs) =>
        seqs.Select((s, i) => new SequenceSpan(s.Slot, s.Start, i, 1, 1f)).ToArray();

    [Test]
    public void AReplayInsideTheCachePasses() =>
        Assert.DoesNotThrow(() => CudaBackend.CheckReplayBatch(Batch((0, 8191), (3, 0)), 2, cacheSlots: 4, cacheMaxPositions: 8192));

    [Test]
    public void AReplayPastTheLastPositionIsRefused()
    {
        var e = Assert.Throws<ArgumentException>(() => CudaBackend.CheckReplayBatch(Batch((0, 8192)), 1, 4, 8192));
        Assert.That(e!.Message, Does.Contain("positions 8192..8192 outside the cache's 4 x 8192"));
    }

    [Test]
    public void AReplayInAnUnknownSlotIsRefused() =>
        Assert.Throws<ArgumentException>(() => CudaBackend.CheckReplayBatch(Batch((4, 0)), 1, 4, 8192));

    [Test]
    public void AReplayWhoseRowsDoNotMatchTheStepIsRefused()
    {
        Assert.Throws<ArgumentException>(() => CudaBackend.CheckReplayBatch(Batch((0, 5), (1, 5)), 3, 4, 8192));
        Assert.Throws<ArgumentException>(() => CudaBackend.CheckReplayBatch([new SequenceSpan(0, 5, 1, 1, 1f)], 1, 4, 8192));
    }
}

public class LinearPlanTests
{
    [Test]
    public void GemmRunsRowMajorProductsThroughTheTransposeTrick()
    {
        // y[2048, 13652] = x[2048, 2560] W^T with W [13652, 2560] rows: cuBLAS sees C^T = W x^T.
        var g = GemmShape.For(rows: 2048, k: 2560, n: 13652, ldw: 2560);
        Assert.That(g, Is.EqualTo(new GemmShape(Interop.CuBlas.OpT, Interop.CuBlas.OpN, 13652, 2048, 2560, 2560, 2560, 13652)));
    }

    [Test]
    public void GemmReadsPaddedWeightRowsWithTheirStride()
    {
        // mlp.c_proj: 6826 inputs padded to 6832 per row on the device.
        var g = GemmShape.For(rows: 7, k: 6826, n: 2560, ldw: 6832);
        Assert.That((g.M, g.N, g.K, g.Lda, g.Ldb, g.Ldc), Is.EqualTo((2560, 7, 6826, 6832, 6826, 2560)));
        Assert.Throws<ArgumentOutOfRangeException>(() => GemmShape.For(1, 6826, 2560, 6824));
    }

    [Test]
    public void WeightRowsArePaddedToSixteenBytes()
    {
        Assert.That(WeightRows.LeadingDimension(2560), Is.EqualTo(2560));
        Assert.That(WeightRows.LeadingDimension(6826), Is.EqualTo(6832));
        Assert.That(WeightRows.LeadingDimension(1), Is.EqualTo(8));
    }

    [TestCase(1, 2560, 7680, 2560, 960, 5120)]
    [TestCase(1, 6826, 2560, 6832, 320, 13664)]
    [TestCase(4, 6826, 2560, 6832, 320, 54656)]
    [TestCase(1, 2560, 50257, 2560, 6283, 5120)]
    public void DecodeProductsRunAsGemv(int rows, int k, int n, int ldw, int blocks, int shared)
    {
        var plan = GemvPlan.For(rows, k, n, ldw, elementSize: 2, maxSharedBytes: 163 * 1024);
        Assert.That(plan, Is.EqualTo(new GemvPlan(blocks, 256, shared)));
    }

    [Test]
    public void OtherProductsGoToCublas()
    {
        Assert.That(GemvPlan.For(5, 2560, 2560, 2560, 2, 163 * 1024), Is.Null, "more rows than the GEMV holds");
        Assert.That(GemvPlan.For(1, 2561, 2560, 2561, 2, 163 * 1024), Is.Null, "a tied head whose rows are not 16-byte aligned");
        Assert.That(GemvPlan.For(4, 6826, 2560, 6832, 2, 48 * 1024), Is.Null, "input does not fit the shared memory");
    }
}

public class RooflineProbeTests
{
    [Test]
    public void BuffersAreOneGibibyteOrAnEighthOfFreeMemory()
    {
        Assert.That(CudaRooflineProbe.BufferBytesFor(140L << 30), Is.EqualTo(1L << 30));
        Assert.That(CudaRooflineProbe.BufferBytesFor(4L << 30), Is.EqualTo(512L << 20));
        Assert.That(CudaRooflineProbe.BufferBytesFor(1000), Is.EqualTo(1L << 20));
    }

    [Test]
    public void RatesAreComputedFromBytesOrFlopsAndMilliseconds()
    {
        Assert.That(CudaRooflineProbe.GigabytesPerSecond(2e9, 1.0), Is.EqualTo(2000).Within(1e-9));
        Assert.That(CudaRooflineProbe.GemmGflops(8192, 8192, 8192, 2.0), Is.EqualTo(2.0 * 8192 * 8192 * 8192 / 2e-3 / 1e9).Within(1e-6));
        Assert.That(CudaRooflineProbe.GigabytesPerSecond(1, 0), Is.EqualTo(0));
    }
}

public class DecodeSplitTests
{
    [Test]
    public void OneSequenceOnAnH200AimsAtSeventeenSplits() =>
        Assert.That(DecodeSplits.Target(multiprocessors: 132, heads: 32, sequences: 1, maxSplits: 32), Is.EqualTo(17));

    [Test]
    public void ManySequencesNeedNoSplitting() =>
        Assert.That(DecodeSplits.Target(132, 32, 64, 32), Is.EqualTo(1));

    [TestCase(1, 1, 32)]
    [TestCase(100, 17, 32)]
    [TestCase(2048, 17, 128)]
    [TestCase(8192, 17, 256)]
    [TestCase(8192, 1, 256)]
    public void ChunksAreMultiplesOf32UpTo256(int keys, int target, int chunk) =>
        Assert.That(DecodeSplits.Chunk(keys, target), Is.EqualTo(chunk));

    [Test]
    public void NoContextUsesMoreSplitsThanTheCacheHas()
    {
        foreach (var maxPos in new[] { 1, 255, 256, 257, 8192 })
        {
            int maxSplits = (maxPos + 255) / 256;
            for (var target = 1; target <= maxSplits; target++)
                for (var keys = 1; keys <= maxPos; keys += 1 + keys / 7)
                    Assert.That(DecodeSplits.Used(keys, target), Is.InRange(1, maxSplits), $"keys {keys}, target {target}, max {maxPos}");
        }
    }
}
