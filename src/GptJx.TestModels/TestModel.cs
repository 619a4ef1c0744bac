using System.Text.Json;
using System.Text.Json.Nodes;
using GptJx.Generation;
using GptJx.Model;
using GptJx.Tensors;
using GptJx.Tokenization;

namespace GptJx.TestModels;

/// <summary>Shape of a random-weight test model.</summary>
public sealed record TestModelShape(int Layers, int Width, int Heads, int FeedForwardWidth, int VocabularySize, int ContextLength)
{
    /// <summary>A few MB: for trying the CLI and for tests.</summary>
    public static TestModelShape Tiny { get; } = new(2, 96, 6, 250, 50257, 1024);

    /// <summary>The full-size GPT-JX architecture (2.65 B parameters).</summary>
    public static TestModelShape GptJx3B { get; } = new(32, 2560, 32, 6826, 50257, 8192);

    public static TestModelShape Preset(string name) => name switch
    {
        "tiny" => Tiny,
        "gpt-jx-3b" => GptJx3B,
        _ => throw new InvalidArgumentException("preset", $"'{name}' is not one of tiny, gpt-jx-3b"),
    };
}

/// <summary>
/// Writes a checkpoint folder in the published layout (config.json with the BTLM keys,
/// weights, GPT-2 tokenizer files) with deterministic random weights. Tensors are
/// generated one at a time, so the full-size model needs memory for one tensor only.
/// </summary>
public static class TestModel
{
    public static void Write(string directory, TestModelShape shape, DType dtype, CheckpointFormat format, ulong seed,
        IProgress<long>? bytesWritten = null, bool tied = true)
    {
        if (shape.Width % shape.Heads != 0) throw new ArgumentException($"heads ({shape.Heads}) must divide width ({shape.Width})");
        Directory.CreateDirectory(directory);
        var tensors = Tensors(shape, dtype, tied);
        CheckpointWriter.Write(directory, format, tensors, (spec, bytes) => Fill(spec, bytes, shape, seed), bytesWritten);
        File.WriteAllText(Path.Combine(directory, "config.json"), Config(shape, dtype, tied).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        Gpt2Tokenizer.Default.WriteFiles(directory);
    }

    public static JsonObject Config(TestModelShape s, DType dtype, bool tied) => new()
    {
        ["model_type"] = "btlm",
        ["architectures"] = new JsonArray("BTLMLMHeadModel"),
        ["n_layer"] = s.Layers,
        ["n_embd"] = s.Width,
        ["n_head"] = s.Heads,
        ["n_inner"] = s.FeedForwardWidth,
        ["n_positions"] = s.ContextLength,
        ["vocab_size"] = s.VocabularySize,
        ["position_embedding_type"] = "alibi",
        ["activation_function"] = "swiglu",
        ["layer_norm_epsilon"] = 1e-5,
        ["mup_embeddings_scale"] = 14.6,
        ["mup_output_alpha"] = 2.22,
        ["mup_width_scale"] = 0.1,
        ["mup_scale_qk_dot_by_d"] = true,
        ["scale_attn_weights"] = true,
        ["scale_attn_by_inverse_layer_idx"] = false,
        ["tie_word_embeddings"] = tied,
        ["torch_dtype"] = dtype switch { DType.F32 => "float32", DType.F16 => "float16", _ => "bfloat16" },
        ["bos_token_id"] = Math.Min(50256, s.VocabularySize - 1),   // GPT-2's end-of-text, or the last id of a cut vocabulary
        ["eos_token_id"] = Math.Min(50256, s.VocabularySize - 1),
        ["use_cache"] = true,
    };

    public static List<TensorSpec> Tensors(TestModelShape s, DType dtype, bool tied)
    {
        long d = s.Width, f = s.FeedForwardWidth, v = s.VocabularySize;
        var list = new List<TensorSpec> { new("transformer.wte.weight", dtype, [v, d]) };
        for (int l = 0; l < s.Layers; l++)
        {
            string p = $"transformer.h.{l}.";
            list.AddRange(
            [
                new(p + "ln_1.weight", dtype, [d]), new(p + "ln_1.bias", dtype, [d]),
                new(p + "attn.c_attn.weight", dtype, [d, 3 * d]), new(p + "attn.c_attn.bias", dtype, [3 * d]),
                new(p + "attn.c_proj.weight", dtype, [d, d]), new(p + "attn.c_proj.bias", dtype, [d]),
                new(p + "ln_2.weight", dtype, [d]), new(p + "ln_2.bias", dtype, [d]),
                new(p + "mlp.c_fc.weight", dtype, [d, f]), new(p + "mlp.c_fc.bias", dtype, [f]),
                new(p + "mlp.c_fc2.weight", dtype, [d, f]), new(p + "mlp.c_fc2.bias", dtype, [f]),
                new(p + "mlp.c_proj.weight", dtype, [f, d]), new(p + "mlp.c_proj.bias", dtype, [d]),
            ]);
        }
        list.Add(new("transformer.ln_f.weight", dtype, [d]));
        list.Add(new("transformer.ln_f.bias", dtype, [d]));
        list.Add(new("transformer.relative_pe.slopes", dtype, [s.Heads, 1]));
        if (!tied) list.Add(new("lm_head.weight", dtype, [v, d]));
        return list;
    }

    /// <summary>
    /// Random values by role: LayerNorm gains near 1, small biases, matrices with
    /// std 0.02 like the published initialisation (0.02/sqrt(2L) for the output projections).
    /// </summary>
    private static void Fill(TensorSpec spec, Span<byte> bytes, TestModelShape shape, ulong seed)
    {
        var values = new float[Math.Min(1 << 16, spec.ElementCount)];
        var random = new Pcg32(seed ^ (ulong)StableHash(spec.Name));
        string n = spec.Name;
        if (n.EndsWith("relative_pe.slopes", StringComparison.Ordinal))
        {
            var slopes = Alibi.Slopes(shape.Heads);
            HalfConvert.FromSingle(slopes, spec.DType, bytes);
            return;
        }
        (float center, float spread) = n switch
        {
            _ when n.Contains(".ln_") && n.EndsWith(".weight") => (1f, 0.05f),
            _ when n.EndsWith(".bias") => (0f, 0.01f),
            _ when n.EndsWith("c_proj.weight") => (0f, 0.02f / MathF.Sqrt(2 * shape.Layers)),
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
