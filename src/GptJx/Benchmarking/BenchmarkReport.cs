using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace GptJx.Benchmarking;

/// <summary>Median and spread of repeated measurements.</summary>
public sealed record Stat(double Median, double Min, double Max, int Count)
{
    public static Stat Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0) return new Stat(double.NaN, double.NaN, double.NaN, 0);
        var sorted = values.Order().ToArray();
        double median = sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
        return new Stat(median, sorted[0], sorted[^1], sorted.Length);
    }

    /// <summary>The value at quantile <paramref name="q"/> (nearest rank).</summary>
    public static double Quantile(IReadOnlyCollection<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        int rank = (int)Math.Ceiling(q * sorted.Length) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
    }

    /// <summary>Half the min-max range relative to the median, in percent.</summary>
    public double SpreadPercent => Median == 0 ? 0 : (Max - Min) / 2 / Median * 100;
}

public sealed record MachineReport(string Device, IReadOnlyDictionary<string, string> Details, string Os, string Runtime, string Engine, int ProcessorCount, double MemoryGB, DateTimeOffset Date);

public sealed record ModelReport(string Location, string? Preset, long Parameters, string WeightType, long WeightBytes, long BytesReadPerToken, string Backend);

/// <param name="GBs">Checkpoint bytes over the median load time.</param>
/// <param name="FileReadGBs">Reading the same files sequentially into a buffer (page cache warm or cold as the machine has it): the rate that bounds loading.</param>
public sealed record LoadReport(Stat Seconds, double GBs, long FileBytes, double FileReadGBs);

/// <param name="Gflop">Arithmetic of one prefill (matrix products for every token, logits for the last, attention).</param>
public sealed record PrefillReport(int PromptTokens, Stat TokensPerSecond, Stat TimeToFirstTokenSeconds, double Gflop, double GflopsAchieved, double PercentOfFmaPeak, double PercentOfGemmRate);

/// <param name="Context">Tokens in each sequence's cache when decoding starts.</param>
/// <param name="TokensPerSecond">Aggregate over the batch (batch x steps / time), median over repeats.</param>
/// <param name="LatencyP50Ms">Per-step latency (one token for every sequence of the batch).</param>
/// <param name="BytesPerStep">Weights plus the mean KV cache read per step.</param>
/// <param name="PercentOfRoofline">Achieved bytes/s (steps/s x bytes per step) over the measured triad bandwidth (the roofline).</param>
/// <param name="PercentOfReadBandwidth">The same over the measured read-only bandwidth (decode only reads).</param>
/// <param name="AdjacentWeightReadGBs">Reading the loaded weights themselves (a sum), median of passes just before and after this decode run (CPU).</param>
/// <param name="PercentOfAdjacentWeightRead">Achieved bytes/s over that: the share of the bandwidth available at that moment that decode used.</param>
/// <param name="AllocatedBytesPerStep">Managed allocation in the timed loop, all threads.</param>
/// <param name="LaunchesPerDecodeStep">Kernels the device ran per step (backends that count them: CUDA), null elsewhere.</param>
public sealed record DecodeReport(int Batch, int Context, int Steps, Stat TokensPerSecond, double LatencyP50Ms, double LatencyP99Ms,
    long BytesPerStep, double PercentOfRoofline, double PercentOfRooflineWeightsOnly, double PercentOfReadBandwidth,
    double AdjacentWeightReadGBs, double PercentOfAdjacentWeightRead, double AllocatedBytesPerStep, double? LaunchesPerDecodeStep = null);

/// <param name="PeakResidentBytes">Process peak RSS from model load to the end (the probes' buffers excluded where the OS allows).</param>
/// <param name="BudgetBytes">Weight bytes plus the largest KV cache the run held.</param>
public sealed record MemoryReport(long PeakResidentBytes, long ResidentAfterLoadBytes, long WeightBytes, long LargestKvCacheBytes, long BudgetBytes, double PeakOverBudget, bool PeakCoversLoadOnly);

public sealed record BenchmarkReport(
    string? Command,
    MachineReport Machine,
    ModelReport Model,
    BandwidthCeiling? Bandwidth,
    ComputeCeiling? Compute,
    LoadReport Load,
    IReadOnlyList<PrefillReport> Prefill,
    IReadOnlyList<DecodeReport> Decode,
    MemoryReport Memory)
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The report as a readable table.</summary>
    public string ToTable()
    {
        var ci = CultureInfo.InvariantCulture;
        var s = new StringBuilder();
        s.AppendLine(ci, $"machine   {Machine.Device}; {string.Join("; ", Machine.Details.Where(d => d.Key != "cpu").Select(d => $"{d.Key} {d.Value}"))}");
        s.AppendLine(ci, $"engine    GptJx {Machine.Engine}, {Machine.Runtime}, {Machine.Os}");
        s.AppendLine(ci, $"model     {Model.Preset ?? Model.Location}: {Model.Parameters / 1e9:F2} B parameters, {Model.WeightType} weights {Model.WeightBytes / 1e9:F2} GB, on {Model.Backend}");
        if (Bandwidth is { } bw)
            s.AppendLine(ci, $"ceilings  memory bandwidth: triad {bw.TriadGBs:F1} GB/s, copy {bw.CopyGBs:F1}, read {bw.ReadGBs:F1} ({bw.Threads} threads, {bw.BufferBytes >> 20} MiB arrays)");
        if (Compute is { } c)
            s.AppendLine(ci, $"          {c.ComputeType} FMA peak {c.PeakGflops:F0} GFLOP/s; GEMM {c.GemmShape}: {c.GemmGflops:F0} GFLOP/s");
        s.AppendLine(ci, $"load      {Load.Seconds.Median:F2} s (spread {Load.Seconds.SpreadPercent:F0}%), {Load.GBs:F2} GB/s; reading the files alone {Load.FileReadGBs:F2} GB/s");
        s.AppendLine();
        s.AppendLine("prefill   tokens   tok/s (median, spread)   TTFT s    GFLOP/s   % FMA peak   % GEMM rate");
        foreach (var p in Prefill)
            s.AppendLine(ci, $"          {p.PromptTokens,6}   {p.TokensPerSecond.Median,7:F2} ±{p.TokensPerSecond.SpreadPercent,4:F1}%        {p.TimeToFirstTokenSeconds.Median,7:F2}   {p.GflopsAchieved,7:F1}   {p.PercentOfFmaPeak,9:F1}%   {p.PercentOfGemmRate,10:F1}%");
        s.AppendLine();
        s.AppendLine("decode    batch  context  tok/s (aggregate, spread)  p50 ms   p99 ms   % triad roofline (weights only)  % read bw  % weight read next to it  alloc B/step");
        foreach (var d in Decode)
        {
            var launches = d.LaunchesPerDecodeStep is { } n ? string.Create(ci, $"   {n:F0} kernels/step") : "";
            s.AppendLine(ci, $"          {d.Batch,5}  {d.Context,7}  {d.TokensPerSecond.Median,8:F2} ±{d.TokensPerSecond.SpreadPercent,4:F1}%          {d.LatencyP50Ms,7:F1}  {d.LatencyP99Ms,7:F1}   {d.PercentOfRoofline,6:F1}% ({d.PercentOfRooflineWeightsOnly:F1}%)           {d.PercentOfReadBandwidth,6:F1}%   {d.PercentOfAdjacentWeightRead,6:F1}% of {d.AdjacentWeightReadGBs:F1} GB/s   {d.AllocatedBytesPerStep,8:F0}{launches}");
        }
        s.AppendLine();
        s.AppendLine(ci, $"memory    peak RSS {Memory.PeakResidentBytes / 1e9:F2} GB (after load {Memory.ResidentAfterLoadBytes / 1e9:F2} GB); weights {Memory.WeightBytes / 1e9:F2} GB + largest KV cache {Memory.LargestKvCacheBytes / 1e9:F2} GB = {Memory.BudgetBytes / 1e9:F2} GB; peak / that = {Memory.PeakOverBudget:F3}");
        return s.ToString();
    }
}
