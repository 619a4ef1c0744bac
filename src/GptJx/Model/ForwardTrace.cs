using GptJx.Backends;

namespace GptJx.Model;

/// <summary>
/// The residual stream after every layer and the logits of every position for one
/// prompt, copied to the host: what `gptjx verify` compares between backends.
/// </summary>
public sealed class ForwardTrace
{
    public required int[] Ids { get; init; }

    /// <summary>[layer][position * width + i], fp32.</summary>
    public required float[][] Layers { get; init; }

    /// <summary>[position * vocabulary + v], fp32.</summary>
    public required float[] Logits { get; init; }

    public static ForwardTrace Run(GptJxModel model, int[] ids)
    {
        if (ids.Length > model.MaxRowsPerForward)
            throw new ArgumentException($"a trace runs in one forward call: at most {model.MaxRowsPerForward} tokens, got {ids.Length}", nameof(ids));
        var config = model.Config;
        var layers = new float[config.Layers][];
        var logits = new float[ids.Length * config.VocabularySize];
        var rows = Enumerable.Range(0, ids.Length).ToArray();
        using var cache = model.Backend.CreateKvCache(config.Layers, 1, ids.Length, config.Heads, config.HeadDim);
        var batch = new AttentionBatch(1);
        batch.Add(0, 0, ids.Length, config.AlibiScaling?.SlopeMultiplier(ids.Length) ?? 1f);
        model.Forward(ids, batch, cache, rows, logits, (layer, hidden) =>
        {
            layers[layer] = new float[hidden.Rows * hidden.Columns];
            model.Backend.CopyToHost(hidden, layers[layer]);
        });
        return new ForwardTrace { Ids = ids, Layers = layers, Logits = logits };
    }

    /// <summary>||a - b|| / ||b|| over two equally long vectors, in double.</summary>
    public static double RelativeError(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < b.Length; i++)
        {
            double d = a[i] - b[i];
            diff += d * d;
            norm += (double)b[i] * b[i];
        }
        return norm == 0 ? Math.Sqrt(diff) : Math.Sqrt(diff / norm);
    }
}
