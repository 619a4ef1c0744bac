using GptJx.Backends;
using GptJx.Generation;
using GptJx.Tensors;

namespace GptJx.Cuda.Tests;

/// <summary>
/// Token picks on the device (kernels/sampling.cu) against the host Sampler: the same token for the
/// same draw, except where the two sums of probability round differently (<see cref="AssertRoundingTie"/>).
/// The logits are fp32 whatever the weight type, so one fixture runs them.
/// </summary>
[TestFixture(DType.BF16)]
[Category("GPU")]
public class GpuSamplingTests(DType type) : GpuTest(type)
{
    [Test]
    public void ArgmaxAndSamplingOverTheFullVocabulary()
    {
        const int v = 50257, rows = 3;
        var logits = Random(rows * v, 3f);
        var t = Tensor(rows, v, DType.F32, logits);
        var tokens = new int[rows];
        Backend.Argmax(t, tokens);
        var expected = Enumerable.Range(0, rows).Select(r => Array.IndexOf(logits, logits.Skip(r * v).Take(v).Max(), r * v) - r * v).ToArray();
        Assert.That(tokens, Is.EqualTo(expected));

        Backend.Sample(t, [new(0f, 0, 1f, 0.3f), new(1f, 1, 1f, 0.9f), new(0.7f, 0, 1e-6f, 0.5f)], tokens);
        Assert.That(tokens, Is.EqualTo(expected), "greedy, top-k 1 and a tiny top-p all pick the argmax");

        // Sampling picks what the host Sampler picks for the same draw: ranking by logit, top-k, top-p,
        // then the inverse CDF in ranking order.
        var cases = new (float T, int K, float P)[] { (1f, 5, 1f), (0.8f, 0, 0.9f), (1.3f, 50, 0.7f), (1f, 0, 1f), (0.5f, 40, 1f) };
        foreach (var (temperature, k, topP) in cases)
            foreach (var u in new[] { 0f, 0.13f, 0.6f, 0.999f })
            {
                Backend.Sample(t, [.. Enumerable.Repeat(new SampleParams(temperature, k, topP, u), rows)], tokens);
                for (var r = 0; r < rows; r++)
                {
                    var sampler = new Sampler(new GenerationOptions { Temperature = temperature, TopK = k, TopP = topP }, v);
                    var row = logits.AsSpan(r * v, v).ToArray();
                    var host = sampler.Next(row.ToArray(), new TokenDraw(temperature, k, topP, u));
                    var what = $"row {r}, T {temperature}, top-k {k}, top-p {topP}, u {u}";
                    if (tokens[r] != host) AssertRoundingTie(row, temperature, k, topP, u, tokens[r], host, what);
                }
            }

        // Ties: equal logits rank by index, so top-k 2 over three equal maxima keeps the two lowest indices.
        var tied = new float[v];
        Array.Fill(tied, -5f);
        tied[7] = tied[300] = tied[9000] = 2f;
        var tt = Tensor(1, v, DType.F32, tied);
        var one = new int[1];
        Backend.Sample(tt, [new SampleParams(1f, 2, 1f, 0.75f)], one);
        Assert.That(one[0], Is.EqualTo(300));
        Backend.Sample(tt, [new SampleParams(1f, 2, 1f, 0.25f)], one);
        Assert.That(one[0], Is.EqualTo(7));
    }

    /// <summary>
    /// The device sums probabilities as 2^-40 fixed point, the host fp32 probabilities in fp64, so
    /// where the draw u * mass falls within rounding of the boundary between two tokens (deep in the
    /// tail, u near 1) the two may pick neighbours. Passes only for that case: both picks in the kept
    /// set, and u * mass within 1e-6 of the total mass of every boundary between them (fp64 running
    /// sums in ranking order).
    /// </summary>
    private static void AssertRoundingTie(float[] logits, float t, int topK, float topP, float u, int device, int host, string what)
    {
        var ranking = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ThenBy(i => i).ToArray();
        var candidates = topK > 0 ? Math.Min(topK, ranking.Length) : ranking.Length;
        var mass = ranking.Take(candidates).Select(i => Math.Exp((logits[i] - (double)logits[ranking[0]]) / t)).ToArray();
        var kept = candidates;
        if (topP < 1f)
        {
            double total = mass.Sum(), running = 0;
            for (kept = 0; kept < candidates && running < topP * total;) running += mass[kept++];
        }
        var keptMass = mass.Take(kept).Sum();
        int rd = Array.IndexOf(ranking, device), rh = Array.IndexOf(ranking, host);
        Assert.That(rd, Is.InRange(0, kept - 1), $"{what}: device picked {device}, outside the kept set (host picked {host})");
        double before = 0;
        for (var i = 0; i < Math.Max(rd, rh); i++)
        {
            before += mass[i];
            if (i >= Math.Min(rd, rh))
                Assert.That(Math.Abs(before - u * keptMass) / keptMass, Is.LessThanOrEqualTo(1e-6),
                    $"{what}: device picked {device} (rank {rd}), host {host} (rank {rh}): not a rounding tie");
        }
        TestContext.Out.WriteLine($"{what}: fp32 rounding tie, device rank {rd}, host rank {rh}");
    }


    /// <summary>
    /// A small vocabulary full of equal logits (ties everywhere: top-k and top-p boundaries inside
    /// groups of equal logits, picks among them by index), every combination of temperature, top-k,
    /// top-p and draw in one launch: each row picks what the host picks.
    /// </summary>
    [Test]
    public void TiesTopKTopPAndDrawsMatchTheHost()
    {
        const int v = 300;
        float[] levels = [-2f, -1f, 0f, -0f, 0.5f, 1f, 3f];
        var row = new float[v];
        for (var i = 0; i < v; i++) row[i] = i % 5 == 4 ? (float)(Rng.NextDouble() * 4 - 2) : levels[Rng.Next(levels.Length)];
        var draws = (from t in new[] { 0.7f, 1.3f }
                     from k in new[] { 0, 2, 7, 299 }
                     from p in new[] { 1f, 0.6f, 1e-6f }
                     from u in new[] { 0f, 0.3f, 0.77f, 0.999f }
                     select new SampleParams(t, k, p, u)).ToArray();
        var logits = Tensor(draws.Length, v, DType.F32, Enumerable.Repeat(row, draws.Length).SelectMany(r => r).ToArray());
        var tokens = new int[draws.Length];
        Backend.Sample(logits, draws, tokens);
        for (var r = 0; r < draws.Length; r++)
        {
            var d = draws[r];
            var host = new Sampler(new GenerationOptions { Temperature = d.Temperature, TopK = d.TopK, TopP = d.TopP }, v)
                .Next(row.ToArray(), new TokenDraw(d.Temperature, d.TopK, d.TopP, d.Uniform));
            var what = $"T {d.Temperature}, top-k {d.TopK}, top-p {d.TopP}, u {d.Uniform}";
            if (tokens[r] != host) AssertRoundingTie(row, d.Temperature, d.TopK, d.TopP, d.Uniform, tokens[r], host, what);
        }
    }
}
