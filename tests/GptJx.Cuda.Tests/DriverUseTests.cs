using GptJx.Backends;
using GptJx.Cuda.Interop;
using GptJx.Generation;
using GptJx.Tensors;

namespace GptJx.Cuda.Tests;

/// <summary>
/// How the backend uses the driver: contexts, handle lifetimes, errors that name their kernel,
/// and the device's token picks agreeing with the host's. The emulated device's counters make
/// context use visible; on a real GPU those tests are skipped.
/// </summary>
[Category("GPU")]
public class DriverUseTests
{
    [SetUp]
    public void RequireDevice() => TestDevice.Require();

    private static void RequireEmulator()
    {
        if (!TestDevice.IsEmulated) Assert.Ignore("needs the emulated device's counters");
    }

    [Test]
    public void CreatingABackendRetainsThePrimaryContextOnce()
    {
        RequireEmulator();
        var created = TestDevice.EmulatorCounter("primary_context_created");
        var retained = TestDevice.EmulatorCounter("primary_context_retained");
        using (CudaBackend.Create(0, DType.F16))
        {
            Assert.That(TestDevice.EmulatorCounter("primary_context_retained") - retained, Is.EqualTo(1));
            Assert.That(TestDevice.EmulatorCounter("primary_context_created") - created, Is.EqualTo(1));
            Assert.That(TestDevice.EmulatorCounter("primary_context_refcount"), Is.EqualTo(1));
        }
        Assert.That(TestDevice.EmulatorCounter("primary_context_refcount"), Is.Zero, "disposing the backend releases the context");
    }

    [Test]
    public void AFailedAllocationLeavesNoContextReference()
    {
        RequireEmulator();
        using (var backend = CudaBackend.Create(0, DType.BF16))
        {
            var (_, total) = backend.MemoryInfo();
            var e = Assert.Throws<CudaException>(() => backend.Allocate((int)Math.Min(int.MaxValue, total / 4096 + 1), 4096, DType.F32))!;
            Assert.That(e.ErrorName, Is.EqualTo("CUDA_ERROR_OUT_OF_MEMORY"));
            Assert.That(e.Call, Is.EqualTo("cuMemAlloc_v2"));
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.That(TestDevice.EmulatorCounter("primary_context_refcount"), Is.Zero);
    }

    [Test]
    public void AGraphCanBeDisposedOnAThreadWithNoCurrentContext()
    {
        using var backend = CudaBackend.Create(0, DType.F16);
        var x = backend.Allocate(1, 64, DType.F32);
        backend.Upload(x, new float[64]);
        backend.BeginCapture();
        backend.Scale(x, 2f);
        var graph = backend.EndCapture();
        backend.Replay(graph, [], new AttentionBatch(1));
        // A thread pool thread has no CUDA context current; disposing there must still wait for the replay.
        Assert.DoesNotThrowAsync(() => Task.Run(graph.Dispose));
        x.Dispose();
    }

    [Test]
    public void SynchronizingEachLaunchNamesTheKernelThatFailed()
    {
        RequireEmulator();  // a real GPU may not fault on a freed pointer
        using var backend = CudaBackend.Create(0, DType.F16, new CudaBackendOptions { SynchronizeEachLaunch = true });
        var x = (CudaTensor)backend.Allocate(4, 64, DType.F32);
        var freed = x.Pointer;
        x.Dispose();
        using var scope = backend.Context.Enter();
        var e = Assert.Throws<CudaException>(() => backend.Kernels["scale_f32"].Launch(Dim3.Of(1), new Dim3(256), 0, backend.Stream,
            new KernelArgs().Ptr(freed).Long(256).Float(2f)))!;
        Assert.That(e.Call, Is.EqualTo("cuLaunchKernel"));
        Assert.That(e.ErrorName, Is.EqualTo("CUDA_ERROR_ILLEGAL_ADDRESS"));
        Assert.That(e.Message, Does.Contain("kernel scale_f32").And.Contain("which was freed"));
    }

    [Test]
    public void ALaunchWithArgumentsOfTheWrongSizeIsRefused()
    {
        using var backend = CudaBackend.Create(0, DType.F16);
        var x = (CudaTensor)backend.Allocate(4, 64, DType.F32);
        using var scope = backend.Context.Enter();
        var e = Assert.Throws<ArgumentException>(() => backend.Kernels["scale_f32"].Launch(Dim3.Of(1), new Dim3(256), 0, backend.Stream,
            new KernelArgs().Ptr(x.Pointer).Int(256).Float(2f)))!;
        Assert.That(e.Message, Is.EqualTo("kernel scale_f32 takes parameters of 8 8 4 bytes; the launch passes 8 4 4"));
        x.Dispose();
    }

    [Test]
    public void RowsWithNonFiniteLogitsAreRefusedOnTheDeviceAsOnTheHost()
    {
        using var backend = CudaBackend.Create(0, DType.BF16);
        float[][] rows =
        [
            [0.5f, 1f, 3f, -2f, 3f],
            [float.NaN, 1f, 3f, float.NaN, 3f],
            [2f, 1f, 5f, float.PositiveInfinity, 0f],
            [float.NegativeInfinity, 1f, 3f, 0f, 0f],
        ];
        using var logits = backend.Allocate(rows.Length, 5, DType.F32);
        backend.Upload(logits, rows.SelectMany(r => r).ToArray());
        var greedy = new int[rows.Length];
        backend.Argmax(logits, greedy);
        var sampled = new int[rows.Length];
        backend.Sample(logits, [.. Enumerable.Repeat(new SampleParams(0.8f, 0, 1f, 0.5f), rows.Length)], sampled);
        Assert.That(greedy, Is.EqualTo(new[] { 2, -1, -1, -1 }));
        Assert.That(sampled[1..], Is.All.EqualTo(-1));
        Assert.That(sampled[0], Is.InRange(0, 4));

        var host = new Sampler(new GenerationOptions(), 5);
        Assert.That(host.Next(rows[0].ToArray(), TokenDraw.Greedy), Is.EqualTo(greedy[0]));
        foreach (var row in rows[1..])
            Assert.Throws<NonFiniteLogitsException>(() => host.Next(row.ToArray(), TokenDraw.Greedy));
    }
}
