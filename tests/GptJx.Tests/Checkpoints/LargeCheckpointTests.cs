using System.Diagnostics;
using GptJx.Checkpoints;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Tests.Checkpoints;

/// <summary>
/// Archives past 4 GiB, where zip offsets need ZIP64 records. Explicit: it
/// writes about 4.5 GB to the temp folder, so run it by name when changing the
/// zip code.
/// </summary>
[Explicit("writes 4.5 GB"), Category("Large")]
public class LargeCheckpointTests : CheckpointTestBase
{
    [Test]
    public void PyTorchBinPast4GiB([Values(CheckpointFormat.PyTorchBin, CheckpointFormat.SafeTensors)] CheckpointFormat format)
    {
        // Three 1.5 GB bf16 tensors: the last starts beyond 4 GiB.
        var specs = Enumerable.Range(0, 3).Select(i => new TensorSpec($"big.{i}", DType.BF16, [750_000_000])).ToList();
        static void Mark(TensorSpec t, Span<byte> s)
        {
            s.Fill((byte)t.Name[^1]);
            s[0] = 0xA5;
            s[^1] = 0x5A;
        }

        var clock = Stopwatch.StartNew();
        string entry = CheckpointWriter.Write(Dir, format, specs, Mark);
        TestContext.Out.WriteLine($"wrote {new FileInfo(entry).Length:N0} bytes in {clock.Elapsed.TotalSeconds:F1} s");

        using var source = CheckpointLoader.Open(Dir);
        foreach (var spec in specs)
        {
            Assert.That(source.TryGetTensor(spec.Name, out var info));
            var data = source.Open(info);
            Assert.That(data.Length, Is.EqualTo(1_500_000_000L));
            var bytes = data.Bytes;
            Assert.That((bytes[0], bytes[1], bytes[^2], bytes[^1]), Is.EqualTo(((byte)0xA5, (byte)spec.Name[^1], (byte)spec.Name[^1], (byte)0x5A)), spec.Name);
        }
    }
}
