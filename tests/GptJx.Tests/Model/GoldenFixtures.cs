using System.Text.Json;

namespace GptJx.Tests.Model;

/// <summary>
/// The committed golden fixtures (tests/fixtures/golden): checkpoints with the logits the independent
/// PyTorch reference (tools/reference) computes for them. Shared by the CPU and GPU tests.
/// </summary>
internal static class GoldenFixtures
{
    internal sealed record Golden(int[] InputIds, float[][] Logits, int[]? GreedyPrompt, int[]? GreedyContinuation, int[]? ShortInputIds, float[][]? ShortLogits);

    public static IEnumerable<string> Names() =>
        Directory.GetDirectories(Path.Combine(TestPaths.Fixtures, "golden")).Select(Path.GetFileName).Order()!;

    public static Golden Read(string fixture)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(TestPaths.Golden(fixture), "golden.json")));
        var root = doc.RootElement;
        int[]? Ids(string key) => root.TryGetProperty(key, out var v) ? v.EnumerateArray().Select(e => e.GetInt32()).ToArray() : null;
        float[][]? Matrix(string key) => root.TryGetProperty(key, out var v)
            ? v.EnumerateArray().Select(r => r.EnumerateArray().Select(e => (float)e.GetDouble()).ToArray()).ToArray()
            : null;
        return new Golden(Ids("input_ids")!, Matrix("logits")!, Ids("greedy_prompt"), Ids("greedy_continuation"), Ids("short_input_ids"), Matrix("short_logits"));
    }

    /// <summary>The logits of every position of <paramref name="ids"/>, from one pass.</summary>
    public static float[] AllLogits(GptJxModel model, int[] ids)
    {
        using var sequence = model.CreateSequence(ids.Length);
        var logits = new float[ids.Length * model.VocabularySize];
        sequence.AppendAll(ids, logits);
        return logits;
    }
}
