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
