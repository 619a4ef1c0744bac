using System.Diagnostics;
using GptJx.Backends;
using GptJx.Cuda;
using GptJx.Generation;
using GptJx.Model;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Cuda.Tests;

/// <summary>
/// Whole models on the CUDA backend (the emulated device where the machine has no GPU) against the
/// CPU reference: `gptjx verify` for fp16 and bf16 at head widths 16, 64 and 80, tied and untied;
/// greedy text; graph replay against eager steps; and the memory plan refusing a model the device
/// cannot hold. (The golden fixtures and the serving engine on the GPU: <see cref="GpuModelTests"/>.)
/// </summary>
[Category("GPU")]
public class CudaEndToEndTests
{
    // Two layers, a 2048-token vocabulary (GPT-2's first ids: common English stays inside it), a
    // feed-forward width that is not a multiple of 8 (padded weight rows), heads of the given width.
    private static ModelConfig Shape(int headDim) => ModelConfig.Tiny with
    {
        Layers = 2, Width = 2 * headDim, Heads = 2, FeedForwardWidth = 3 * headDim + 3,
        VocabularySize = 2048, BosTokenId = 2047, EosTokenId = 2047, ContextLength = 128,
    };

    private static readonly Dictionary<(int, bool), string> Models = new();

    /// <summary>A random-weight bf16 checkpoint of <see cref="Shape"/>, written once per test run.</summary>
    private static string Model(int headDim, bool tied)
    {
        lock (Models)
        {
            if (!Models.TryGetValue((headDim, tied), out var dir))
            {
                dir = Path.Combine(Path.GetTempPath(), $"gptjx-cuda-e2e-{Environment.ProcessId}-hd{headDim}-{(tied ? "tied" : "untied")}");
                TestModel.Write(dir, Shape(headDim) with { TieWordEmbeddings = tied }, DType.BF16, CheckpointFormat.SafeTensors, seed: (ulong)(headDim + (tied ? 1 : 0)));
                AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(dir, true); } catch (IOException) { } };
                Models[(headDim, tied)] = dir;
            }
            return dir;
        }
    }

    [SetUp]
    public void RequireDevice() => TestDevice.Require();

    [TestCase(16, true, "fp16")]
    [TestCase(16, true, "bf16")]
    [TestCase(64, false, "fp16")]
    [TestCase(64, false, "bf16")]
    [TestCase(80, true, "fp16")]
    [TestCase(80, false, "bf16")]
    public void VerifyAgreesWithTheCpuEveryLayer(int headDim, bool tied, string dtype)
    {
        var r = Cli.Run("verify", "--model", Model(headDim, tied), "--device", "cuda", "--dtype", dtype, "--greedy-tokens", "12");
        TestContext.Out.WriteLine(r.Stdout);
        Assert.That(r.ExitCode, Is.Zero, r.Stdout + r.Stderr);
        Assert.That(r.Stdout, Does.Contain("greedy tokens identical: 12/12").And.Not.Contain("FAIL"));
        Assert.That(r.Stdout, Does.Contain($"verify cuda:0 "));
    }

    [TestCase("fp16")]
    [TestCase("bf16")]
    public void GreedyTextEqualsTheCpuText(string dtype)
    {
        string Generate(string device) =>
            Cli.Run("generate", "--model", Model(80, true), "--device", device, "--dtype", dtype, "--max-new-tokens", "16", "It was the").Stdout;
        var cuda = Generate("cuda");
        Assert.That(cuda, Is.Not.Empty);
        Assert.That(cuda, Is.EqualTo(Generate("cpu")));
    }

    [Test]
    public void ReplayedDecodeStepsEqualEagerOnes()
    {
        using var model = ModelLoader.Load(Model(64, false), "cuda", DType.F16);
        var v = model.VocabularySize;
        using var eagerCache = model.CreateKvCache(1, 64);
        using var graphCache = model.CreateKvCache(1, 64);
        var batch = new AttentionBatch(1);
        float[] Run(IKvCache cache, int[] tokens, int start, bool eager)
        {
            batch.Clear();
            batch.Add(0, start, tokens.Length);
            var logits = new float[v];
            // An observer makes the call eager; without one, decode steps are recorded once and then replayed.
            model.Forward(tokens, batch, cache, [tokens.Length - 1], logits, eager ? (_, _) => { } : null);
            return logits;
        }

        var prompt = model.Encode("It was the");
        var expected = Run(eagerCache, prompt, 0, eager: true);
        Assert.That(Run(graphCache, prompt, 0, eager: false), Is.EqualTo(expected), "prefill");
        var launches = TestDevice.IsEmulated ? TestDevice.EmulatorCounter("graph_launches") : 0;
        var position = prompt.Length;
        for (var step = 0; step < 6; step++, position++)
        {
            int[] next = [Sampler.ArgMax(expected)];
            expected = Run(eagerCache, next, position, eager: true);
            Assert.That(Run(graphCache, next, position, eager: false), Is.EqualTo(expected), $"decode step {step} at position {position}");
        }
        if (TestDevice.IsEmulated) Assert.That(TestDevice.EmulatorCounter("graph_launches") - launches, Is.EqualTo(5), "steps 2..6 ran as graph replays");
    }

    [Test]
    public void TheMemoryPlanRefusesAModelTheDeviceCannotHold()
    {
        if (!TestDevice.IsEmulated) Assert.Ignore("needs the emulated device, whose size GPTJX_CUDA_EMULATOR_MEMORY sets");
        var r = Cli.Run(new Dictionary<string, string> { ["GPTJX_CUDA_EMULATOR_MEMORY"] = "200MiB" },
            "generate", "--model", Model(16, true), "--device", "cuda", "--max-new-tokens", "1", "It");
        Assert.That(r.ExitCode, Is.EqualTo(1), r.Stderr);
        Assert.That(r.Stderr, Does.StartWith("error: cuda:0 (").And.Contain("cannot hold the model: it needs")
            .And.Contain("but only 0.20 GiB of 0.20 GiB is free"));
    }

    /// <summary>The gptjx CLI (built beside the tests) in a child process, on the device the tests chose.</summary>
    private static class Cli
    {
        public sealed record Result(int ExitCode, string Stdout, string Stderr);

        public static Result Run(params string[] args) => Run(new Dictionary<string, string>(), args);

        public static Result Run(IReadOnlyDictionary<string, string> environment, params string[] args)
        {
            var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
            {
                RedirectStandardOutput = true, RedirectStandardError = true,
            };
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "GptJx.Cli.dll"));
            foreach (var a in args) start.ArgumentList.Add(a);
            foreach (var (k, v) in environment) start.Environment[k] = v;
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"gptjx {string.Join(' ', args)} did not finish in 5 minutes");
            }
            return new Result(process.ExitCode, stdout.Result, stderr.Result);
        }
    }
}
