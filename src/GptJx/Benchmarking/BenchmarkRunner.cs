using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using GptJx.Backends;
using GptJx.Backends.Cpu;
using GptJx.Model;
using GptJx.Tensors;

namespace GptJx.Benchmarking;

public sealed record BenchmarkOptions
{
    /// <summary>The prompt lengths measured by default, those of them that fit the model's context.</summary>
    public static readonly IReadOnlyList<int> DefaultPromptTokens = [128, 512, 2048];

    /// <summary>Prompt lengths to prefill (default: <see cref="DefaultPromptTokens"/> that fit the context, or half the context if none does).</summary>
    public IReadOnlyList<int>? PromptTokens { get; init; }

    public int NewTokens { get; init; } = 64;
    public IReadOnlyList<int> BatchSizes { get; init; } = [1, 8];

    /// <summary>Timed repetitions of every measurement (after one warm-up).</summary>
    public int Repeat { get; init; } = 3;

    /// <summary>Tokens in each sequence before decoding (default: the first prompt length, less if the new tokens need the room).</summary>
    public int? DecodeContext { get; init; }

    /// <summary>Most tokens per forward call (longer prompts are prefilled in chunks).</summary>
    public int PrefillChunk { get; init; } = 256;

    /// <summary>Measure the bandwidth and compute ceilings.</summary>
    public bool MeasureCeilings { get; init; } = true;

    /// <summary>Name of the preset when the model is a random-weight test model.</summary>
    public string? Preset { get; init; }

    public string? Command { get; init; }

    /// <summary>Progress lines.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>
    /// These options with the prompt lengths and decode context settled for <paramref name="config"/>:
    /// defaults are fitted to its context; given lengths that do not fit are refused, naming the length.
    /// </summary>
    public BenchmarkOptions FitTo(ModelConfig config)
    {
        int context = config.ContextLength;
        if (NewTokens < 1) throw new InvalidArgumentException(nameof(NewTokens), $"must be positive (got {NewTokens})");
        if (NewTokens + 2 > context)
            throw new InvalidArgumentException(nameof(NewTokens), $"{NewTokens} leaves no room for a prompt in the model's context of {context} tokens");
        IReadOnlyList<int> prompts = PromptTokens ?? [.. DefaultPromptTokens.Where(p => p <= context).DefaultIfEmpty(Math.Max(1, context / 2))];
        if (prompts.Count == 0) throw new InvalidArgumentException(nameof(PromptTokens), "must list at least one length");
        foreach (int p in prompts)
        {
            if (p < 1) throw new InvalidArgumentException(nameof(PromptTokens), $"{p} is not a positive length");
            if (p > context) throw new InvalidArgumentException(nameof(PromptTokens), $"{p} is longer than the model's context of {context} tokens");
        }
        // Decoding fills the sequence to DecodeContext + NewTokens + 1 positions (the last token is sampled, not cached).
        int room = context - NewTokens - 1;
        int decodeContext = DecodeContext ?? Math.Min(prompts[0], room);
        if (decodeContext < 1) throw new InvalidArgumentException(nameof(DecodeContext), $"{decodeContext} is not a positive length");
        if (decodeContext > room)
            throw new InvalidArgumentException(nameof(DecodeContext),
                $"{decodeContext} leaves no room for {NewTokens} new tokens in the model's context of {context} tokens (at most {room})");
        return this with { PromptTokens = prompts, DecodeContext = decodeContext };
    }
}

/// <summary>
/// Measures a model on a backend: ceilings (bandwidth, compute), load, prefill per prompt
/// length, batched decode per batch size, peak memory; see <see cref="BenchmarkReport"/>.
/// Batch B decodes B sequences in B slots of one multi-slot KV cache, one forward call per step.
/// </summary>
public static class BenchmarkRunner
{
    public static BenchmarkReport Run(string modelDirectory, Func<IBackend> createBackend, BenchmarkOptions options)
    {
        var log = options.Log ?? (_ => { });
        if (options.BatchSizes.Any(b => b < 1)) throw new ArgumentException("batch sizes must be positive");
        if (options.Repeat < 1) throw new ArgumentException("repeat must be at least 1");
        var config = ModelConfig.Load(modelDirectory);
        options = options.FitTo(config);
        var promptTokens = options.PromptTokens!;
        int decodeContext = options.DecodeContext!.Value;

        var probeBackend = createBackend();
        IRooflineProbe? probe = probeBackend switch
        {
            IRooflineProbeSource source => source.CreateRooflineProbe(),
            CpuBackend cpu => new CpuRooflineProbe(cpu),
            _ => null,
        };
        BandwidthCeiling? bandwidth = null;
        ComputeCeiling? compute = null;
        string probeName = probeBackend.Name;
        MachineReport machine;
        try
        {
            if (probe is not null && options.MeasureCeilings)
            {
                log("measuring memory bandwidth");
                bandwidth = probe.MeasureBandwidth(Math.Max(3, options.Repeat));
                log("measuring the matrix-multiply rate");
                compute = probe.MeasureCompute(Math.Max(3, options.Repeat));
            }
            machine = new MachineReport(probe?.Device ?? probeName, probe?.Describe() ?? new Dictionary<string, string>(),
                RuntimeInformation.OSDescription, RuntimeInformation.FrameworkDescription, MachineInfo.EngineVersion(),
                Environment.ProcessorCount, MachineInfo.TotalMemoryGB(), DateTimeOffset.Now);
        }
        finally
        {
            probeBackend.Dispose();
        }

        // Reading the checkpoint files once: the rate that bounds loading (and a warm page cache for the loads).
        var files = Directory.EnumerateFiles(modelDirectory).Where(f => f.EndsWith(".safetensors") || f.EndsWith(".bin")).ToList();
        long fileBytes = files.Sum(f => new FileInfo(f).Length);
        log("reading the checkpoint files");
        double readSeconds = ReadFiles(files);

        GC.Collect();
        bool peakReset = ProcessMemory.ResetPeak();
        var loadTimes = new List<double>();
        GptJxModel? loaded = null;
        for (int r = 0; r < options.Repeat; r++)
        {
            loaded?.Dispose();
            loaded = null;
            log($"loading the model ({r + 1} of {options.Repeat})");
            long loadStart = Stopwatch.GetTimestamp();
            loaded = GptJxModel.Load(modelDirectory, createBackend(), new ModelLoadOptions { PrefillChunk = options.PrefillChunk });
            loadTimes.Add(Stopwatch.GetElapsedTime(loadStart).TotalSeconds);
        }
        using var model = loaded!;
        var backend = model.Backend;
        long rssAfterLoad = ProcessMemory.ResidentBytes();

        int weightSize = backend.WeightType.Size();
        long weightBytes = config.ParameterCount * weightSize;
        long weightsReadPerToken = (config.ParameterCount - (config.TieWordEmbeddings ? 0 : (long)config.VocabularySize * config.Width)) * weightSize;
        long kvBytesPerPosition = 2L * config.Layers * config.Width * backend.ComputeType.Size();
        long largestKv = 0;

        var bench = new Runner(model, config, log);
        var prefill = new List<PrefillReport>();
        bench.Prefill(Math.Min(32, promptTokens.Min()), 1);    // warm-up: JIT and caches
        foreach (int prompt in promptTokens)
        {
            log($"prefill {prompt} tokens");
            var (rates, ttft) = bench.Prefill(prompt, options.Repeat);
            largestKv = Math.Max(largestKv, prompt * kvBytesPerPosition);
            double gflop = PrefillFlops(config, prompt) / 1e9;
            var tps = Stat.Of(rates);
            double gflops = gflop * tps.Median / prompt;
            prefill.Add(new PrefillReport(prompt, tps, Stat.Of(ttft), gflop, gflops,
                compute is null ? double.NaN : gflops / compute.PeakGflops * 100,
                compute is null ? double.NaN : gflops / compute.GemmGflops * 100));
        }

        var decode = new List<DecodeReport>();
        foreach (int batch in options.BatchSizes)
        {
            log($"decode batch {batch}: prefilling {batch} x {decodeContext} tokens");
            // The bandwidth these very weights can be read at, measured next to the decode run (the
            // machine's bandwidth moves with other work on it): the median of passes before and after.
            double adjacent = double.NaN;
            var cpuBackend = backend as CpuBackend;
            double before = cpuBackend?.MeasureWeightReadBandwidth(3) ?? double.NaN;
            long launchesBefore = (backend as IKernelLaunchCounter)?.KernelLaunches ?? 0;
            var result = bench.Decode(batch, decodeContext, options.NewTokens, options.Repeat);
            double? launchesPerStep = backend is IKernelLaunchCounter counter ? (double)(counter.KernelLaunches - launchesBefore) / result.Steps : null;
            if (cpuBackend is not null) adjacent = (before + cpuBackend.MeasureWeightReadBandwidth(3)) / 2;
            largestKv = Math.Max(largestKv, (long)batch * (decodeContext + options.NewTokens + 1) * kvBytesPerPosition);
            var tps = Stat.Of(result.TokensPerSecond);
            double meanContext = decodeContext + (options.NewTokens - 1) / 2.0;
            long bytesPerStep = weightsReadPerToken + (long)(batch * meanContext * kvBytesPerPosition);
            double steps = tps.Median / batch;
            decode.Add(new DecodeReport(batch, decodeContext, options.NewTokens, tps,
                Stat.Quantile(result.StepSeconds, 0.5) * 1e3, Stat.Quantile(result.StepSeconds, 0.99) * 1e3, bytesPerStep,
                bandwidth is null ? double.NaN : steps * bytesPerStep / 1e9 / bandwidth.RooflineGBs * 100,
                bandwidth is null ? double.NaN : steps * weightsReadPerToken / 1e9 / bandwidth.RooflineGBs * 100,
                bandwidth is null ? double.NaN : steps * bytesPerStep / 1e9 / bandwidth.ReadGBs * 100,
                adjacent, steps * bytesPerStep / 1e9 / adjacent * 100,
                result.AllocatedBytesPerStep, launchesPerStep));
        }

        long peak = ProcessMemory.PeakResidentBytes();
        long budget = weightBytes + largestKv;
        return new BenchmarkReport(options.Command, machine,
            new ModelReport(Path.GetFullPath(modelDirectory), options.Preset, config.ParameterCount, backend.WeightType.Name(), weightBytes, weightsReadPerToken, backend.Name),
            bandwidth, compute,
            new LoadReport(Stat.Of(loadTimes), fileBytes / Stat.Of(loadTimes).Median / 1e9, fileBytes, fileBytes / readSeconds / 1e9),
            prefill, decode,
            new MemoryReport(peak, rssAfterLoad, weightBytes, largestKv, budget, (double)peak / budget, !peakReset));
    }

    private static double ReadFiles(List<string> files)
    {
        var buffer = new byte[16 << 20];
        long start = Stopwatch.GetTimestamp();
        foreach (var f in files)
        {
            using var stream = new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            while (stream.Read(buffer, 0, buffer.Length) > 0) { }
        }
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>FLOPs of one prefill: every token through every layer's matrices, attention over the causal prefix, logits for the last token.</summary>
    public static double PrefillFlops(ModelConfig c, int tokens)
    {
        double d = c.Width, f = c.FeedForwardWidth;
        double perLayer = 2 * (d * 3 * d + d * d + d * 2 * f + f * d);
        double attention = 2.0 * 2 * d * ((double)tokens * (tokens + 1) / 2);   // q.k and p.v over the prefix
        return c.Layers * (tokens * perLayer + attention) + 2 * d * c.VocabularySize;
    }

    private sealed class Runner(GptJxModel model, ModelConfig config, Action<string> log)
    {
        private readonly Random _random = new(12345);

        private int[] Tokens(int count)
        {
            var ids = new int[count];
            for (int i = 0; i < count; i++) ids[i] = _random.Next(config.VocabularySize - 1);
            return ids;
        }

        public (List<double> Rates, List<double> Ttft) Prefill(int prompt, int repeat)
        {
            var rates = new List<double>();
            var ttft = new List<double>();
            var tokens = Tokens(prompt);
            var logits = new float[config.VocabularySize];
            using var cache = model.Backend.CreateKvCache(config.Layers, 1, prompt, config.Heads, config.HeadDim);
            var batch = new AttentionBatch(1);
            int chunk = model.MaxRowsPerForward;
            int[] last = [0];
            for (int r = 0; r < repeat; r++)
            {
                long start = Stopwatch.GetTimestamp();
                for (int s = 0; s < prompt; s += chunk)
                {
                    int n = Math.Min(chunk, prompt - s);
                    batch.Clear();
                    batch.Add(0, s, n, config.AlibiScaling?.SlopeMultiplier(s + n) ?? 1f);
                    last[0] = n - 1;
                    bool final = s + n == prompt;
                    model.Forward(tokens.AsSpan(s, n), batch, cache, final ? last : ReadOnlySpan<int>.Empty, logits);
                }
                model.Backend.Synchronize();
                double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                _ = TensorPrimitives.IndexOfMax(logits);
                double first = Stopwatch.GetElapsedTime(start).TotalSeconds;
                rates.Add(prompt / seconds);
                ttft.Add(first);
                if (repeat > 1) log($"  {prompt / seconds:F2} tok/s");
            }
            return (rates, ttft);
        }

        public DecodeResult Decode(int batchSize, int context, int steps, int repeat)
        {
            int v = config.VocabularySize;
            using var cache = model.Backend.CreateKvCache(config.Layers, batchSize, context + steps + 1, config.Heads, config.HeadDim);
            var batch = new AttentionBatch(batchSize);
            var logits = new float[batchSize * v];
            var rows = new int[batchSize];
            var next = new int[batchSize];
            int chunk = model.MaxRowsPerForward;

            // Each sequence's context, several sequences per forward call where they fit.
            var prompts = Enumerable.Range(0, batchSize).Select(_ => Tokens(context)).ToArray();
            var pending = new List<int>();
            for (int b = 0; b < batchSize; b++)
            {
                for (int s = 0; s < context; s += chunk)
                {
                    int n = Math.Min(chunk, context - s);
                    if (batch.TotalRows + n > chunk) Flush();
                    batch.Add(b, s, n, config.AlibiScaling?.SlopeMultiplier(s + n) ?? 1f);
                    pending.AddRange(prompts[b].AsSpan(s, n).ToArray());
                }
            }
            Flush();
            void Flush()
            {
                if (batch.Count == 0) return;
                model.Forward(pending.ToArray(), batch, cache, ReadOnlySpan<int>.Empty, logits);
                batch.Clear();
                pending.Clear();
            }
            for (int b = 0; b < batchSize; b++) { next[b] = prompts[b][^1]; rows[b] = b; }

            var stepSeconds = new List<double>(repeat * steps);
            var rates = new List<double>();
            var times = new double[steps];
            double allocated = 0;
            int stepsRun = 0;
            for (int r = -1; r < repeat; r++)                 // r = -1: warm-up
            {
                long before = GC.GetTotalAllocatedBytes(precise: true);
                long start = Stopwatch.GetTimestamp();
                for (int step = 0; step < steps; step++)
                {
                    stepsRun++;
                    long t0 = Stopwatch.GetTimestamp();
                    batch.Clear();
                    for (int b = 0; b < batchSize; b++)
                        batch.Add(b, context + step, 1, config.AlibiScaling?.SlopeMultiplier(context + step + 1) ?? 1f);
                    model.Forward(next, batch, cache, rows, logits);
                    model.Backend.Synchronize();
                    for (int b = 0; b < batchSize; b++)
                        next[b] = TensorPrimitives.IndexOfMax(new ReadOnlySpan<float>(logits, b * v, v));
                    times[step] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                    if (r < 0 && step >= 3) break;
                }
                double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                long after = GC.GetTotalAllocatedBytes(precise: true);
                if (r < 0) continue;                          // positions are rewritten from `context` on each repeat
                allocated = Math.Max(allocated, (double)(after - before) / steps);
                stepSeconds.AddRange(times);
                rates.Add(batchSize * steps / seconds);
                log($"  batch {batchSize}: {batchSize * steps / seconds:F2} tok/s");
            }
            return new DecodeResult(rates, stepSeconds, allocated, stepsRun);
        }
    }

    /// <param name="Steps">Decode steps run, warm-up included.</param>
    private sealed record DecodeResult(List<double> TokensPerSecond, List<double> StepSeconds, double AllocatedBytesPerStep, int Steps);
}
