using GptJx.Backends;
using GptJx.Cuda;
using GptJx.Tensors;

namespace GptJx.Cuda.Tests;

/// <summary>
/// Fused ALiBi attention (tensor-core prefill, flash-decoding, graph replay) against a CPU
/// computation from the same rounded q, k, v.
/// </summary>
[TestFixture(DType.F16)]
[TestFixture(DType.BF16)]
[Category("GPU")]
public class GpuAttentionTests(DType type) : GpuTest(type)
{
    private const int Heads = 2;

    /// <summary>
    /// Relative L2 error allowed per output row of one head. A model of the kernel's rounding
    /// (tools/reference/attention_error_model.py) gives at most 3.3e-3 (bf16) and 4.5e-4 (fp16) on data
    /// like these tests'; a kernel that attends only the last 512 of 8191 keys gives 0.2 with slope 2^-8
    /// and more than 3 with slope 2^-20.
    /// </summary>
    private double RelativeTolerance => Type == DType.BF16 ? 1e-2 : 2e-3;

    /// <summary>Slope 2^-8 (the published model's smallest) and one near 0, so that every key of a long context matters.</summary>
    private static readonly float[] LongContextSlopes = [1f / 256, 1f / (1 << 20)];

    private void AssertRowClose(ReadOnlySpan<float> actual, float[] expected, string what)
    {
        double diff = 0, norm = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            diff += (actual[i] - (double)expected[i]) * (actual[i] - (double)expected[i]);
            norm += (double)expected[i] * expected[i];
        }
        var relative = Math.Sqrt(diff / norm);
        Assert.That(relative, Is.LessThanOrEqualTo(RelativeTolerance), $"{what}: relative L2 error of the row");
    }

    /// <summary>Host copy of everything written to the cache: per slot, per head, [positions, hd].</summary>
    private sealed class HostCache(int slots, int heads, int positions, int hd)
    {
        public readonly float[][][] K = Enumerable.Range(0, slots).Select(_ => Enumerable.Range(0, heads).Select(_ => new float[positions * hd]).ToArray()).ToArray();
        public readonly float[][][] V = Enumerable.Range(0, slots).Select(_ => Enumerable.Range(0, heads).Select(_ => new float[positions * hd]).ToArray()).ToArray();
    }

    /// <summary>Runs one attention call on random qkv and checks <paramref name="checkRows"/> (all when null) against the CPU.</summary>
    private void RunAndCheck(IKvCache cache, HostCache host, int hd, AttentionBatch batch, float scale, int[]? checkRows = null, string what = "", float[]? slopes = null)
    {
        var d = Heads * hd;
        var rows = batch.TotalRows;
        var qkv = Rounded(Random(rows * 3 * d));
        var qkvT = Tensor(rows, 3 * d, Type, qkv);
        var output = Tensor(rows, d, Type);
        slopes ??= Reference.Slopes(Heads);
        Backend.Attention(qkvT, cache, 0, batch, slopes, scale, output);
        var got = Read(output);

        foreach (var s in batch.Active)
            for (var i = 0; i < s.Length; i++)
                for (var h = 0; h < Heads; h++)
                {
                    var row = s.FirstRow + i; var pos = s.StartPosition + i;
                    Array.Copy(qkv, row * 3 * d + d + h * hd, host.K[s.Slot][h], pos * hd, hd);
                    Array.Copy(qkv, row * 3 * d + 2 * d + h * hd, host.V[s.Slot][h], pos * hd, hd);
                }
        foreach (var s in batch.Active)
            for (var i = 0; i < s.Length; i++)
            {
                var row = s.FirstRow + i;
                if (checkRows is not null && !checkRows.Contains(i)) continue;
                for (var h = 0; h < Heads; h++)
                {
                    var expected = Reference.AttendOne(qkv.AsSpan(row * 3 * d + h * hd, hd), host.K[s.Slot][h], host.V[s.Slot][h], hd,
                        s.StartPosition + i, scale, slopes[h] * s.AlibiScale);
                    AssertRowClose(got.AsSpan(row * d + h * hd, hd), expected, $"{what} slot {s.Slot} token {i} head {h}");
                }
            }
    }

    [TestCase(80, 1)]
    [TestCase(80, 37)]
    [TestCase(80, 130)]
    [TestCase(64, 65)]
    [TestCase(128, 20)]
    [TestCase(16, 70)]
    public void PrefillOneSequence(int hd, int length)
    {
        var cache = Own(Backend.CreateKvCache(1, 1, 256, Heads, hd));
        var host = new HostCache(1, Heads, 256, hd);
        var batch = new AttentionBatch(1);
        batch.Add(0, 0, length);
        RunAndCheck(cache, host, hd, batch, 1f / hd * 8, what: $"prefill {length}");
    }

    [Test]
    public void ChunkedPrefillThenDecodeThenMixedBatch()
    {
        const int hd = 80, positions = 512;
        var cache = Own(Backend.CreateKvCache(1, 3, positions, Heads, hd));
        var host = new HostCache(3, Heads, positions, hd);
        var b = new AttentionBatch(3);
        b.Add(0, 0, 50);
        RunAndCheck(cache, host, hd, b, 0.1f, what: "first chunk");
        b.Clear(); b.Add(0, 50, 71);
        RunAndCheck(cache, host, hd, b, 0.1f, what: "second chunk");
        b.Clear(); b.Add(0, 121, 1);
        RunAndCheck(cache, host, hd, b, 0.1f, what: "decode");
        // Three sequences of different lengths and starts in one call (prefill path, one of length 1).
        b.Clear(); b.Add(1, 0, 5); b.Add(2, 0, 64, alibiScale: 0.5f); b.Add(0, 122, 1);
        RunAndCheck(cache, host, hd, b, 0.1f, what: "mixed");
        // Decode of all three at their own positions.
        b.Clear(); b.Add(2, 64, 1); b.Add(0, 123, 1); b.Add(1, 5, 1);
        RunAndCheck(cache, host, hd, b, 0.1f, what: "batched decode");
    }

    [Test]
    public void LongContextUpTo8192()
    {
        const int hd = 80, positions = 8192;
        var cache = Own(Backend.CreateKvCache(1, 1, positions, Heads, hd));
        var host = new HostCache(1, Heads, positions, hd);
        var b = new AttentionBatch(1);
        b.Add(0, 0, positions - 1);
        RunAndCheck(cache, host, hd, b, 1f / hd, checkRows: [0, 1, 63, 64, 4000, positions - 2], what: "prefill 8191", slopes: LongContextSlopes);
        b.Clear(); b.Add(0, positions - 1, 1);
        RunAndCheck(cache, host, hd, b, 1f / hd, what: "decode at 8191", slopes: LongContextSlopes);
    }

    [Test]
    public void CapturedDecodeReplaysAtLaterPositions()
    {
        const int hd = 80, positions = 1024, d = Heads * hd;
        var cache = Own(Backend.CreateKvCache(1, 2, positions, Heads, hd));
        var host = new HostCache(2, Heads, positions, hd);
        var b = new AttentionBatch(2);
        b.Add(0, 0, 300); b.Add(1, 0, 17);
        RunAndCheck(cache, host, hd, b, 0.1f, what: "prefill");

        var qkv = Rounded(Random(2 * 3 * d));
        var qkvT = Tensor(2, 3 * d, Type, qkv);
        var output = Tensor(2, d, Type);
        var slopes = Reference.Slopes(Heads);
        b.Clear(); b.Add(0, 300, 1); b.Add(1, 17, 1);
        Backend.Attention(qkvT, cache, 0, b, slopes, 0.1f, output);  // eager warm-up at positions 300 / 17
        var eager = Read(output);
        foreach (var s in b.Active)  // it appended these rows' keys and values at 300 / 17
            for (var h = 0; h < Heads; h++)
            {
                Array.Copy(qkv, s.FirstRow * 3 * d + d + h * hd, host.K[s.Slot][h], s.StartPosition * hd, hd);
                Array.Copy(qkv, s.FirstRow * 3 * d + 2 * d + h * hd, host.V[s.Slot][h], s.StartPosition * hd, hd);
            }

        Backend.BeginCapture();
        Backend.Attention(qkvT, cache, 0, b, slopes, 0.1f, output);
        using var graph = Backend.EndCapture();
        Assert.That(graph.Sequences, Is.EqualTo(2));

        // Replaying at the same positions gives the eager result; at later positions, the CPU's.
        Backend.Replay(graph, [], b);
        AssertClose(Read(output), eager, 0, 0, "replay at the captured positions");
        for (var step = 1; step <= 3; step++)
        {
            b.Clear(); b.Add(0, 300 + step, 1); b.Add(1, 17 + step, 1);
            Backend.Replay(graph, [], b);
            var got = Read(output);
            foreach (var s in b.Active)
                for (var h = 0; h < Heads; h++)
                {
                    Array.Copy(qkv, s.FirstRow * 3 * d + d + h * hd, host.K[s.Slot][h], s.StartPosition * hd, hd);
                    Array.Copy(qkv, s.FirstRow * 3 * d + 2 * d + h * hd, host.V[s.Slot][h], s.StartPosition * hd, hd);
                }
            foreach (var s in b.Active)
                for (var h = 0; h < Heads; h++)
                {
                    var expected = Reference.AttendOne(qkv.AsSpan(s.FirstRow * 3 * d + h * hd, hd), host.K[s.Slot][h], host.V[s.Slot][h], hd, s.StartPosition, 0.1f, slopes[h]);
                    AssertRowClose(got.AsSpan(s.FirstRow * d + h * hd, hd), expected, $"replay step {step} head {h}");
                }
        }
    }

    [Test]
    public void CapturedEmbedReadsNewIds()
    {
        const int v = 11, dd = 16;
        var table = Random(v * dd);
        var emb = Own(Backend.LoadEmbedding(Checkpoint("wte", table, DType.F32, v, dd)));
        Backend.FinishLoading();
        var o = Tensor(2, dd, DType.F32);
        Backend.Embed([1, 2], emb, 1f, o);
        Backend.BeginCapture();
        Backend.Embed([1, 2], emb, 2f, o);
        using var graph = Backend.EndCapture();
        Backend.Replay(graph, [7, 3], new AttentionBatch(1));
        var expected = new[] { 7, 3 }.SelectMany(id => table.Skip(id * dd).Take(dd).Select(x => HalfConvert.Round(x, Type) * 2f)).ToArray();
        AssertClose(Read(o), expected, 1e-6f, 1e-6f, "replayed embedding");
        Assert.Throws<ArgumentException>(() => Backend.Replay(graph, [1, 2, 3], new AttentionBatch(1)));
    }
}
