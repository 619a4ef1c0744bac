using System.Text.Json;
using System.Text.Json.Nodes;
using GptJx.Generation;
using GptJx.Model;
using GptJx.Tensors;
using GptJx.Tokenization;

namespace GptJx.TestModels;

/// <summary>
/// Writes a checkpoint folder in the published layout (config.json with the BTLM keys,
/// weights, GPT-2 tokenizer files) with deterministic random weights. Tensors are
/// generated one at a time, so the full-size model needs memory for one tensor only.
/// </summary>
public static class TestModel
{
    /// <summary>Writes a model of <paramref name="config"/> (a preset such as <see cref="ModelConfig.Tiny"/>, or one derived from it) with <paramref name="dtype"/> weights.</summary>
    public static void Write(string directory, ModelConfig config, DType dtype, CheckpointFormat format, ulong seed, IProgress<long>? bytesWritten = null)
    {
        if (config.Width % config.Heads != 0) throw new ArgumentException($"heads ({config.Heads}) must divide width ({config.Width})");
        Directory.CreateDirectory(directory);
        var tensors = Tensors(config, dtype);
        CheckpointWriter.Write(directory, format, tensors, (spec, bytes) => Fill(spec, bytes, config, seed), bytesWritten);
        File.WriteAllText(Path.Combine(directory, "config.json"), Config(config, dtype).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        Gpt2Tokenizer.Default.WriteFiles(directory);
    }

    /// <summary>The config.json of <paramref name="c"/> as BTLM writes it, with <paramref name="dtype"/> as its torch_dtype.</summary>
    public static JsonObject Config(ModelConfig c, DType dtype)
    {
        var json = new JsonObject
        {
            ["model_type"] = "btlm",
            ["architectures"] = new JsonArray("BTLMLMHeadModel"),
            ["n_layer"] = c.Layers,
            ["n_embd"] = c.Width,
            ["n_head"] = c.Heads,
            ["n_inner"] = c.FeedForwardWidth,
            ["n_positions"] = c.ContextLength,
            ["vocab_size"] = c.VocabularySize,
            ["position_embedding_type"] = "alibi",
            ["activation_function"] = "swiglu",
            ["layer_norm_epsilon"] = c.LayerNormEpsilon,
            ["mup_embeddings_scale"] = c.EmbeddingScale,
            ["mup_output_alpha"] = c.OutputAlpha,
            ["mup_width_scale"] = c.WidthScale,
            ["mup_scale_qk_dot_by_d"] = c.ScaleQkDotByD,
            ["scale_attn_weights"] = c.ScaleAttentionWeights,
            ["scale_attn_by_inverse_layer_idx"] = c.ScaleAttentionByInverseLayerIndex,
            ["tie_word_embeddings"] = c.TieWordEmbeddings,
            ["torch_dtype"] = dtype switch { DType.F32 => "float32", DType.F16 => "float16", _ => "bfloat16" },
            ["bos_token_id"] = c.BosTokenId,
            ["eos_token_id"] = c.EosTokenId,
            ["use_cache"] = true,
        };
        if (c.AlibiScaling is { } scaling)
            json["alibi_scaling"] = scaling.Factor is double factor
                ? new JsonObject { ["type"] = "linear", ["factor"] = factor }
                : new JsonObject { ["type"] = "linear", ["train_seq_len"] = scaling.TrainSequenceLength };
        return json;
    }

    /// <summary>The checkpoint's tensors (<see cref="ModelConfig.Layout"/>) stored as <paramref name="dtype"/>.</summary>
    public static List<TensorSpec> Tensors(ModelConfig config, DType dtype) =>
        config.Layout.All.Select(t => new TensorSpec(t.Name, dtype, t.Shape)).ToList();

    /// <summary>
    /// Random values by role: LayerNorm gains near 1, small biases, matrices with
    /// std 0.02 like the published initialisation (0.02/sqrt(2L) for the output projections).
    /// </summary>
    private static void Fill(TensorSpec spec, Span<byte> bytes, ModelConfig config, ulong seed)
    {
        var values = new float[Math.Min(1 << 16, spec.ElementCount)];
        var random = new Pcg32(seed ^ (ulong)StableHash(spec.Name));
        string n = spec.Name;
        if (n == config.Layout.Slopes.Name)
        {
            var slopes = Alibi.Slopes(config.Heads);
            HalfConvert.FromSingle(slopes, spec.DType, bytes);
            return;
        }
        (float center, float spread) = n switch
        {
            _ when n.Contains(".ln_") && n.EndsWith(".weight") => (1f, 0.05f),
            _ when n.EndsWith(".bias") => (0f, 0.01f),
            _ when n.EndsWith("c_proj.weight") => (0f, 0.02f / MathF.Sqrt(2 * config.Layers)),
            _ => (0f, 0.02f),
        };
        int elementSize = spec.DType.Size();
        for (long offset = 0; offset < spec.ElementCount; offset += values.Length)
        {
            int count = (int)Math.Min(values.Length, spec.ElementCount - offset);
            for (int i = 0; i < count; i++)
            {
                // Sum of four uniforms: a cheap bell curve with the requested standard deviation.
                double u = random.NextUInt() / 4294967296.0 + random.NextUInt() / 4294967296.0
                         + random.NextUInt() / 4294967296.0 + random.NextUInt() / 4294967296.0 - 2.0;
                values[i] = center + spread * (float)(u * 1.7320508075688772);
            }
            HalfConvert.FromSingle(values.AsSpan(0, count), spec.DType, bytes.Slice((int)(offset * elementSize), count * elementSize));
        }
    }

    private static long StableHash(string text)
    {
        ulong hash = 14695981039346656037UL;
        foreach (char c in text) hash = (hash ^ c) * 1099511628211UL;
        return (long)hash;
    }
}
