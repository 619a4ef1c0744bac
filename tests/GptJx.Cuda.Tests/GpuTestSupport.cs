using System.Runtime.InteropServices;
using GptJx.Backends;
using GptJx.Checkpoints;
using GptJx.Cuda;
using GptJx.Tensors;

namespace GptJx.Cuda.Tests;

/// <summary>Base of the GPU tests: a backend per test on the device <see cref="TestDevice"/> chose (skipped only where there is none).</summary>
public abstract class GpuTest
{
    protected GpuTest(DType type) => Type = type;

    protected DType Type { get; }
    protected CudaBackend Backend { get; private set; } = null!;
    protected Random Rng { get; private set; } = null!;
    private readonly List<IDisposable> _owned = new();

    protected virtual CudaBackendOptions Options => new() { MaxRows = 8192, MaxSequences = 16 };

    [SetUp]
    public void CreateBackend()
    {
        TestDevice.Require();
        Backend = CudaBackend.Create(0, Type, Options);
        Rng = new Random(1234);
    }

    [TearDown]
    public void DisposeBackend()
    {
        foreach (var d in Enumerable.Reverse(_owned)) d.Dispose();
        _owned.Clear();
        Backend?.Dispose();
    }

    protected T Own<T>(T d) where T : IDisposable { _owned.Add(d); return d; }

    protected float[] Random(int n, float scale = 1f)
    {
        var a = new float[n];
        for (var i = 0; i < n; i++)
        {
            // Box-Muller normal
            var u1 = 1.0 - Rng.NextDouble();
            var u2 = Rng.NextDouble();
            a[i] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2)) * scale;
        }
        return a;
    }

    protected float[] Rounded(float[] a) => a.Select(v => HalfConvert.Round(v, Type)).ToArray();

    /// <summary>A checkpoint-like tensor in unmanaged memory, stored as <paramref name="dtype"/>.</summary>
    protected TensorData Checkpoint(string name, float[] values, DType dtype, params long[] shape) =>
        Own(new HostTensor(name, values, dtype, shape)).Data;

    protected ITensor Tensor(int rows, int cols, DType type, float[]? values = null)
    {
        var t = Own(Backend.Allocate(rows, cols, type));
        if (values is not null) Backend.Upload(t, values);
        return t;
    }

    protected float[] Read(ITensor t)
    {
        var a = new float[t.Rows * t.Columns];
        Backend.Download(t, a);
        return a;
    }

    protected static void AssertClose(float[] actual, float[] expected, float atol, float rtol, string what)
    {
        Assert.That(actual.Length, Is.GreaterThanOrEqualTo(expected.Length), what);
        var worst = 0.0; var at = -1;
        for (var i = 0; i < expected.Length; i++)
        {
            var err = Math.Abs(actual[i] - expected[i]) - (atol + rtol * Math.Abs(expected[i]));
            if (!(err <= worst) || float.IsNaN(actual[i])) { worst = float.IsNaN(actual[i]) ? double.PositiveInfinity : err; at = i; }
        }
        Assert.That(at, Is.EqualTo(-1), () => $"{what}: element {at}: {actual[at]} vs {expected[at]} (atol {atol}, rtol {rtol})");
    }

    internal sealed unsafe class HostTensor : IDisposable
    {
        private readonly byte* _memory;

        public HostTensor(string name, float[] values, DType dtype, long[] shape)
        {
            var bytes = new byte[values.Length * dtype.Size()];
            HalfConvert.FromSingle(values, dtype, bytes);
            _memory = (byte*)NativeMemory.Alloc((nuint)Math.Max(1, bytes.Length));
            bytes.CopyTo(new Span<byte>(_memory, bytes.Length));
            Data = new TensorData(new TensorInfo(name, dtype, shape, "test.safetensors"), _memory);
        }

        public TensorData Data { get; }
        public void Dispose() => NativeMemory.Free(_memory);
    }
}

/// <summary>Straightforward fp32/fp64 CPU versions of the ops.</summary>
internal static class Reference
{
    public static float[] LayerNorm(float[] x, int width, float[] gain, float[]? bias, float eps)
    {
        var y = new float[x.Length];
        for (var r = 0; r < x.Length / width; r++)
        {
            double mean = 0, var = 0;
            for (var c = 0; c < width; c++) mean += x[r * width + c];
            mean /= width;
            for (var c = 0; c < width; c++) { var d = x[r * width + c] - mean; var += d * d; }
            var rstd = 1.0 / Math.Sqrt(var / width + eps);
            for (var c = 0; c < width; c++) y[r * width + c] = (float)((x[r * width + c] - mean) * rstd * gain[c] + (bias?[c] ?? 0));
        }
        return y;
    }

    /// <summary>y[M,N] = x[M,K] W[K,N] + b.</summary>
    public static float[] MatMul(float[] x, int m, int k, float[] w, int n, float[]? bias)
    {
        var y = new float[m * n];
        for (var i = 0; i < m; i++)
            for (var j = 0; j < n; j++)
            {
                double s = bias?[j] ?? 0;
                for (var t = 0; t < k; t++) s += (double)x[i * k + t] * w[t * n + j];
                y[i * n + j] = (float)s;
            }
        return y;
    }

    /// <summary>One query against keys/values [positions, hd] (row-major), causal up to position p.</summary>
    public static float[] AttendOne(ReadOnlySpan<float> q, float[] keys, float[] values, int hd, int p, float scale, float slope)
    {
        var scores = new double[p + 1];
        var max = double.NegativeInfinity;
        for (var j = 0; j <= p; j++)
        {
            double dot = 0;
            for (var d = 0; d < hd; d++) dot += q[d] * keys[j * hd + d];
            scores[j] = dot * scale - slope * (p - j);
            max = Math.Max(max, scores[j]);
        }
        double sum = 0;
        for (var j = 0; j <= p; j++) { scores[j] = Math.Exp(scores[j] - max); sum += scores[j]; }
        var o = new float[hd];
        for (var d = 0; d < hd; d++)
        {
            double acc = 0;
            for (var j = 0; j <= p; j++) acc += scores[j] * values[j * hd + d];
            o[d] = (float)(acc / sum);
        }
        return o;
    }

    public static float[] Slopes(int heads) => Enumerable.Range(0, heads).Select(h => MathF.Pow(2f, -8f * (h + 1) / heads)).ToArray();
}
