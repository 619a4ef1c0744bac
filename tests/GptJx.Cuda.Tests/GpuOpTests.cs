using GptJx.Backends;
using GptJx.Cuda;
using GptJx.Tensors;

namespace GptJx.Cuda.Tests;

[TestFixture(DType.F16)]
[TestFixture(DType.BF16)]
[Category("GPU")]
public class GpuOpTests(DType type) : GpuTest(type)
{
    private float Tol => Type == DType.BF16 ? 2e-2f : 4e-3f;

    [Test]
    public void DeviceIsDescribed()
    {
        TestContext.Out.WriteLine(Backend.Device);
        Assert.That(Backend.Name, Does.StartWith("cuda:0 ("));
        Assert.That(Backend.Device.Major, Is.GreaterThanOrEqualTo(8));
        Assert.That(Backend.ComputeType, Is.EqualTo(Type));
    }

    [TestCase(1)]
    [TestCase(5)]
    public void EmbedGathersAndScales(int count)
    {
        const int v = 37, d = 48;
        var table = Random(v * d);
        var emb = Own(Backend.LoadEmbedding(Checkpoint("wte", table, DType.F32, v, d)));
        int[] ids = [0, 36, 5, 5, 17];
        var o = Tensor(8, d, DType.F32);
        Backend.Embed(ids.AsSpan(0, count), emb, 14.6f, o);
        var expected = new float[count * d];
        for (var t = 0; t < count; t++)
            for (var c = 0; c < d; c++) expected[t * d + c] = HalfConvert.Round(table[ids[t] * d + c], Type) * 14.6f;
        Assert.That(o.Rows, Is.EqualTo(count));
        AssertClose(Read(o), expected, 1e-5f, 1e-6f, "embedding");
    }

    [TestCase(1, 2560, DType.F32)]
    [TestCase(7, 2560, DType.F16)]
    [TestCase(3, 100, DType.BF16)]
    [TestCase(2, 33, DType.F16)]
    public void LayerNormMatchesCpu(int rows, int width, DType output)
    {
        var x = Random(rows * width, 3f).Select(v => v + 1.5f).ToArray();
        var gain = Random(width); var bias = Random(width);
        var norm = Own(Backend.LoadNorm(Checkpoint("g", gain, Type, width), Checkpoint("b", bias, Type, width)));
        var input = Tensor(rows, width, DType.F32, x);
        var y = Tensor(rows, width, output);
        Backend.LayerNorm(input, norm, 1e-5f, y);
        var expected = Reference.LayerNorm(x, width, Rounded(gain), Rounded(bias), 1e-5f);
        var tol = output == DType.F32 ? 1e-4f : output == DType.BF16 ? 2e-2f : 4e-3f;
        AssertClose(Read(y), expected, tol, tol, "layer norm");
    }

    [TestCase(1)]
    [TestCase(5)]
    [TestCase(33)]
    public void FusedInOutLinearWithBiasAndResidual(int rows)
    {
        const int k = 64, n1 = 40, n2 = 56, n = n1 + n2;
        var w1 = Random(k * n1, 0.2f); var w2 = Random(k * n2, 0.2f);
        var b1 = Random(n1); var b2 = Random(n2);
        var linear = Own(Backend.LoadLinear(
            [Checkpoint("c_fc", w1, DType.F32, k, n1), Checkpoint("c_fc2", w2, DType.BF16, k, n2)],
            [Checkpoint("b1", b1, DType.F32, n1), Checkpoint("b2", b2, DType.F32, n2)], WeightLayout.InOut));
        Assert.That((linear.InFeatures, linear.OutFeatures), Is.EqualTo((k, n)));
        var w = new float[k * n];
        for (var r = 0; r < k; r++)
        {
            for (var c = 0; c < n1; c++) w[r * n + c] = HalfConvert.Round(w1[r * n1 + c], Type);
            for (var c = 0; c < n2; c++) w[r * n + n1 + c] = HalfConvert.Round(HalfConvert.Round(w2[r * n2 + c], DType.BF16), Type);
        }
        var x = Rounded(Random(rows * k));
        var input = Tensor(rows, k, Type, x);
        var expected = Reference.MatMul(x, rows, k, w, n, b1.Concat(b2).ToArray());

        var y = Tensor(rows, n, Type);
        Backend.Linear(input, linear, y);
        AssertClose(Read(y), expected, Tol * 4, Tol, "x W + b");

        var residual = Random(rows * n);
        var h = Tensor(rows, n, DType.F32, residual);
        Backend.Linear(input, linear, h, accumulate: true);
        AssertClose(Read(h), expected.Zip(residual, (a, b) => a + b).ToArray(), Tol * 4, Tol, "h += x W + b");
    }

    /// <summary>Widths that are not multiples of 8: the device rows are padded to 8, the GEMV (up to 4 rows) and cuBLAS (more) read them with the stride.</summary>
    [TestCase(1, WeightLayout.InOut)]
    [TestCase(2, WeightLayout.OutIn)]
    [TestCase(3, WeightLayout.InOut)]
    [TestCase(4, WeightLayout.OutIn)]
    [TestCase(6, WeightLayout.InOut)]
    [TestCase(6, WeightLayout.OutIn)]
    public void PaddedWeightRowsWithOddInputWidth(int rows, WeightLayout layout)
    {
        const int k = 83, n = 45;
        var wSource = Random(k * n, 0.2f);  // [k, n] for InOut, [n, k] for OutIn
        var bias = Random(n);
        var data = layout == WeightLayout.InOut ? Checkpoint("w", wSource, DType.F32, k, n) : Checkpoint("w", wSource, DType.F32, n, k);
        var linear = Own(Backend.LoadLinear([data], [Checkpoint("b", bias, DType.F32, n)], layout));
        var w = new float[k * n];  // [k, n] for the reference
        for (var r = 0; r < k; r++)
            for (var c = 0; c < n; c++)
                w[r * n + c] = HalfConvert.Round(layout == WeightLayout.InOut ? wSource[r * n + c] : wSource[c * k + r], Type);
        var x = Rounded(Random(rows * k));
        var expected = Reference.MatMul(x, rows, k, w, n, bias);
        var residual = Random(rows * n);
        var h = Tensor(rows, n, DType.F32, residual);
        Backend.Linear(Tensor(rows, k, Type, x), linear, h, accumulate: true);
        AssertClose(Read(h), expected.Zip(residual, (a, b) => a + b).ToArray(), Tol * 4, Tol, $"h += x W + b ({rows} rows, {layout})");
    }

    /// <summary>The probe's description and figures; how fast the device is belongs to `gptjx bench`, not here.</summary>
    [Test]
    public void RooflineProbeDescribesTheDeviceAndGivesFinitePositiveFigures()
    {
        var probe = Backend.CreateRooflineProbe();
        var facts = probe.Describe();
        TestContext.Out.WriteLine(string.Join("; ", facts.Select(f => $"{f.Key}: {f.Value}")));
        Assert.That(facts["gpu"], Is.EqualTo(Backend.Device.Name));
        Assert.That(facts["compute capability"], Is.EqualTo($"{Backend.Device.Major}.{Backend.Device.Minor}"));
        Assert.That(facts["multiprocessors"], Is.EqualTo(Backend.Device.Multiprocessors.ToString()));
        Assert.That(facts["weights"], Is.EqualTo(Type.Name()));
        Assert.That(facts.Keys, Is.SupersetOf(new[] { "CUDA driver API", "cuBLAS", "memory", "memory free" }));

        var bw = probe.MeasureBandwidth(1);
        var compute = probe.MeasureCompute(1);
        TestContext.Out.WriteLine($"{bw}; {compute}");
        Assert.That(new[] { bw.CopyGBs, bw.TriadGBs, bw.ReadGBs, compute.PeakGflops, compute.GemmGflops },
            Is.All.GreaterThan(0.0).And.All.LessThan(double.PositiveInfinity));
        Assert.That(bw.BufferBytes, Is.GreaterThan(0).And.LessThanOrEqualTo(1L << 30));
        Assert.That(compute.GemmShape, Does.Match(@"^\d+ x 2560 x 13652$"), "the engine's fused up|gate product, as many rows as the device runs quickly");
        Assert.That(compute.ComputeType, Does.Match($@"^{Type.Name()} \(fp32 accumulation, peak at \d+\^3\)$"));
    }

    [Test]
    public void OutInLinearSharesATiedEmbedding()
    {
        const int v = 300, d = 64, rows = 3;
        var table = Random(v * d, 0.3f);
        var data = Checkpoint("wte", table, Type, v, d);
        var emb = Own(Backend.LoadEmbedding(data));
        var head = Own(Backend.LoadLinear([data], null, WeightLayout.OutIn));
        var x = Rounded(Random(rows * d));
        var logits = Tensor(rows, v, DType.F32);
        Backend.Linear(Tensor(rows, d, Type, x), head, logits);
        var wt = new float[d * v];
        for (var i = 0; i < v; i++) for (var c = 0; c < d; c++) wt[c * v + i] = HalfConvert.Round(table[i * d + c], Type);
        AssertClose(Read(logits), Reference.MatMul(x, rows, d, wt, v, null), 1e-3f, 1e-3f, "x E^T");
        Backend.Scale(logits, 0.222f);
        AssertClose(Read(logits), Reference.MatMul(x, rows, d, wt, v, null).Select(a => a * 0.222f).ToArray(), 1e-3f, 1e-3f, "scaled logits");
    }

    [TestCase(1)]
    [TestCase(3)]
    public void SwiGluGatesWithTheSecondHalf(int rows)
    {
        const int f = 6826;
        var x = Rounded(Random(rows * 2 * f, 2f));
        var input = Tensor(rows, 2 * f, Type, x);
        var y = Tensor(rows, f, Type);
        Backend.SwiGlu(input, y);
        var expected = new float[rows * f];
        for (var r = 0; r < rows; r++)
            for (var c = 0; c < f; c++)
            {
                var u = x[r * 2 * f + c]; var g = x[r * 2 * f + f + c];
                expected[r * f + c] = u * g / (1 + MathF.Exp(-g));
            }
        AssertClose(Read(y), expected, Tol, Tol, "u * silu(g)");
    }

    [Test]
    public void GatherRowsPicksRows()
    {
        const int cols = 77;
        var x = Random(9 * cols);
        var input = Tensor(9, cols, DType.F32, x);
        var y = Tensor(4, cols, DType.F32);
        int[] rows = [8, 0, 3, 3];
        Backend.GatherRows(input, rows, y);
        var expected = rows.SelectMany(r => x.Skip(r * cols).Take(cols)).ToArray();
        Assert.That(Read(y), Is.EqualTo(expected));
        var half = Tensor(9, cols, Type, Rounded(x));
        var y16 = Tensor(4, cols, Type);
        Backend.GatherRows(half, rows, y16);
        Assert.That(Read(y16), Is.EqualTo(rows.SelectMany(r => Rounded(x).Skip(r * cols).Take(cols)).ToArray()));
    }

    [Test]
    public void WeightsStreamThroughSmallChunksWithConversion()
    {
        using var small = CudaBackend.Create(0, Type, new CudaBackendOptions { StagingChunkBytes = 4096 });
        const int k = 64, n = 300;
        var w = Random(k * n);
        var linear = small.LoadLinear([new HostTensor("w", w, DType.F32, [k, n]).Data], null, WeightLayout.InOut);
        var eye = new float[k * k];
        for (var i = 0; i < k; i++) eye[i * k + i] = 1;
        var x = small.Allocate(k, k, Type);
        small.Upload(x, eye);
        var y = small.Allocate(k, n, DType.F32);
        small.Linear(x, linear, y);
        var got = new float[k * n];
        small.Download(y, got);
        Assert.That(got, Is.EqualTo(w.Select(a => HalfConvert.Round(a, Type)).ToArray()), "identity rows read the weight back");
        var stats = small.FinishLoading();
        Assert.That(stats.Bytes, Is.EqualTo(k * n * 4L));
        TestContext.Out.WriteLine($"load: {stats}");
        linear.Dispose(); x.Dispose(); y.Dispose();
    }
}
