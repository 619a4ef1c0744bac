using System.Text.Json;
using GptJx.Tensors;

namespace GptJx.Model;

/// <summary>
/// The GPT-JX / BTLM hyper-parameters that change the math, read from config.json.
/// Every value comes from the file (or the documented BTLM default when the key is
/// absent); unsupported values are errors naming the key.
/// </summary>
public sealed record ModelConfig
{
    public required int Layers { get; init; }
    public required int Width { get; init; }
    public required int FeedForwardWidth { get; init; }
    public required int Heads { get; init; }
    public required int ContextLength { get; init; }
    public required int VocabularySize { get; init; }
    public float LayerNormEpsilon { get; init; } = 1e-5f;
    public float EmbeddingScale { get; init; } = 1f;
    public float OutputAlpha { get; init; } = 1f;
    public float WidthScale { get; init; } = 1f;
    public bool ScaleQkDotByD { get; init; }
    public bool ScaleAttentionWeights { get; init; } = true;
    public bool ScaleAttentionByInverseLayerIndex { get; init; }
    public bool TieWordEmbeddings { get; init; } = true;
    public DType? TorchDType { get; init; }
    public int BosTokenId { get; init; } = 50256;
    public int EosTokenId { get; init; } = 50256;
    public AlibiScaling? AlibiScaling { get; init; }

    /// <summary>Keys present in the file that this engine does not know (reported as warnings).</summary>
    public IReadOnlyList<string> UnknownKeys { get; init; } = [];

    public int HeadDim => Width / Heads;

    /// <summary>Multiplier of q.k in the attention scores for layer <paramref name="layer"/> (0-based).</summary>
    public float ScoreScale(int layer)
    {
        double scale = 1;
        if (ScaleAttentionWeights) scale /= ScaleQkDotByD ? HeadDim : Math.Sqrt(HeadDim);
        if (ScaleAttentionByInverseLayerIndex) scale /= layer + 1;
        return (float)scale;
    }

    /// <summary>Multiplier of the final hidden state's logits (muP output scaling).</summary>
    public float LogitScale => OutputAlpha * WidthScale;

    /// <summary>The checkpoint's tensors: names and shapes.</summary>
    public CheckpointLayout Layout => new(this);

    /// <summary>Weights of the model, counted over <see cref="Layout"/> (slopes included, as published). Parsing checks it fits a long.</summary>
    public long ParameterCount => Layout.Sum(t => t.ElementCount);

    /// <summary>GPT-JX as published (BTLM-3B-8k's config.json): 2.65 B parameters.</summary>
    public static ModelConfig GptJx3B { get; } = new()
    {
        Layers = 32, Width = 2560, FeedForwardWidth = 6826, Heads = 32, ContextLength = 8192, VocabularySize = 50257,
        EmbeddingScale = 14.6f, OutputAlpha = 2.22f, WidthScale = 0.1f, ScaleQkDotByD = true, TorchDType = DType.BF16,
    };

    /// <summary>The same architecture at a few MB: for trying the CLI and for tests.</summary>
    public static ModelConfig Tiny { get; } = GptJx3B with { Layers = 2, Width = 96, Heads = 6, FeedForwardWidth = 250, ContextLength = 1024 };

    /// <summary>The presets by name, as the CLI's --preset takes them.</summary>
    public static IReadOnlyDictionary<string, ModelConfig> Presets { get; } = new Dictionary<string, ModelConfig>
    {
        ["tiny"] = Tiny,
        ["gpt-jx-3b"] = GptJx3B,
    };

    public static ModelConfig Preset(string name) =>
        Presets.TryGetValue(name, out var config)
            ? config
            : throw new InvalidArgumentException("preset", $"'{name}' is not one of {string.Join(", ", Presets.Keys)}");

    public static ModelConfig Load(string path)
    {
        if (Directory.Exists(path)) path = System.IO.Path.Combine(path, "config.json");
        if (!File.Exists(path)) throw new ModelConfigException(path, null, "file not found");
        if (RegularFile.Problem(path) is { } problem) throw new ModelConfigException(path, null, problem);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            return Parse(doc.RootElement, path);
        }
        catch (JsonException e)
        {
            throw new ModelConfigException(path, null, $"not valid JSON: {e.Message}", e);
        }
    }

    public static ModelConfig Parse(string json, string source = "config.json")
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return Parse(doc.RootElement, source);
        }
        catch (JsonException e)
        {
            throw new ModelConfigException(source, null, $"not valid JSON: {e.Message}", e);
        }
    }

    // Keys that do not change inference; accepted silently.
    private static readonly HashSet<string> InertKeys =
    [
        "architectures", "auto_map", "model_type", "transformers_version", "use_cache", "initializer_range",
        "embd_pdrop", "attn_pdrop", "resid_pdrop", "summary_type", "summary_use_proj", "summary_activation",
        "summary_proj_to_labels", "summary_first_dropout", "reorder_and_upcast_attn", "n_ctx", "pad_token_id",
        "_name_or_path", "tokenizer_class", "task_specific_params", "torchscript", "return_dict", "output_hidden_states",
        "output_attentions", "is_encoder_decoder", "add_cross_attention", "id2label", "label2id", "gradient_checkpointing",
        "unk_token_id", "sep_token_id", "decoder_start_token_id", "max_length", "min_length", "do_sample", "num_beams",
        "temperature", "top_k", "top_p", "repetition_penalty", "prefix", "problem_type", "finetuning_task", "_commit_hash",
    ];

    // Keys this reader interprets.
    private static readonly HashSet<string> MathKeys =
    [
        "n_layer", "n_embd", "n_inner", "n_head", "n_positions", "vocab_size", "layer_norm_epsilon",
        "mup_embeddings_scale", "mup_output_alpha", "mup_width_scale", "mup_scale_qk_dot_by_d",
        "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "tie_word_embeddings", "torch_dtype",
        "bos_token_id", "eos_token_id", "alibi_scaling", "position_embedding_type", "activation_function",
    ];

    private static ModelConfig Parse(JsonElement root, string source)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new ModelConfigException(source, null, "expected a JSON object");
        if (JsonText.FindInvalid(root) is { } bad)
            throw new ModelConfigException(source, bad.InPropertyName ? null : bad.Path,
                $"{(bad.InPropertyName ? bad.Describe() + " " : "")}is not valid text (invalid UTF-8 or an unpaired surrogate escape)");
        var reader = new Reader(root, source);

        string modelType = reader.String("model_type", "btlm");
        if (modelType is not ("btlm" or "gpt-jx" or "gptjx"))
            throw new ModelConfigException(source, "model_type", $"'{modelType}' is not a GPT-JX/BTLM model (expected \"btlm\")");

        string position = reader.String("position_embedding_type", "learned");
        if (position != "alibi")
            throw new ModelConfigException(source, "position_embedding_type", $"'{position}' is not supported (only \"alibi\")");
        string activation = reader.String("activation_function", "gelu_new");
        if (activation != "swiglu")
            throw new ModelConfigException(source, "activation_function", $"'{activation}' is not supported (only \"swiglu\")");

        int width = reader.PositiveInt("n_embd", null);
        int heads = reader.PositiveInt("n_head", null);
        if (width % heads != 0)
            throw new ModelConfigException(source, "n_head", $"{heads} does not divide n_embd {width}");

        DType? torchDType = null;
        if (reader.Has("torch_dtype") && root.GetProperty("torch_dtype").ValueKind != JsonValueKind.Null)
        {
            string t = reader.String("torch_dtype", "");
            if (!DTypeExtensions.TryParse(t, out var parsed))
                throw new ModelConfigException(source, "torch_dtype", $"'{t}' is not supported (float32, float16, bfloat16)");
            torchDType = parsed;
        }

        var unknown = new List<string>();
        foreach (var p in root.EnumerateObject())
            if (!MathKeys.Contains(p.Name) && !InertKeys.Contains(p.Name)) unknown.Add(p.Name);

        var config = new ModelConfig
        {
            Layers = reader.PositiveInt("n_layer", null),
            Width = width,
            Heads = heads,
            FeedForwardWidth = reader.PositiveInt("n_inner", width <= int.MaxValue / 4 ? 4 * width : null, allowNull: true),
            ContextLength = reader.PositiveInt("n_positions", null),
            VocabularySize = reader.PositiveInt("vocab_size", null),
            LayerNormEpsilon = reader.PositiveFloat("layer_norm_epsilon", 1e-5f),
            EmbeddingScale = reader.PositiveFloat("mup_embeddings_scale", 1f),
            OutputAlpha = reader.PositiveFloat("mup_output_alpha", 1f),
            WidthScale = reader.PositiveFloat("mup_width_scale", 1f),
            ScaleQkDotByD = reader.Bool("mup_scale_qk_dot_by_d", false),
            ScaleAttentionWeights = reader.Bool("scale_attn_weights", true),
            ScaleAttentionByInverseLayerIndex = reader.Bool("scale_attn_by_inverse_layer_idx", false),
            TieWordEmbeddings = reader.Bool("tie_word_embeddings", true),
            TorchDType = torchDType,
            BosTokenId = reader.TokenId("bos_token_id", 50256),
            EosTokenId = reader.TokenId("eos_token_id", 50256),
            AlibiScaling = Model.AlibiScaling.Parse(root, source),
            UnknownKeys = unknown,
        };
        CheckDerivedValues(config, source);
        return config;
    }

    /// <summary>Values computed from several keys must stay in range too.</summary>
    private static void CheckDerivedValues(ModelConfig config, string source)
    {
        if (!float.IsFinite(config.LogitScale))
            throw new ModelConfigException(source, "mup_output_alpha",
                $"{config.OutputAlpha} x mup_width_scale {config.WidthScale} = {(double)config.OutputAlpha * config.WidthScale} is beyond the range of a 32-bit float");
        foreach (var (key, id) in (ReadOnlySpan<(string, int)>)[("bos_token_id", config.BosTokenId), ("eos_token_id", config.EosTokenId)])
            if (id >= config.VocabularySize)
                throw new ModelConfigException(source, key, $"{id} is outside the vocabulary of {config.VocabularySize} (vocab_size)");
        try
        {
            _ = config.ParameterCount;
        }
        catch (OverflowException)
        {
            throw new ModelConfigException(source, null,
                $"n_layer {config.Layers}, n_embd {config.Width}, n_inner {config.FeedForwardWidth} and vocab_size {config.VocabularySize} give more parameters than a 64-bit count holds");
        }
    }

    /// <summary>Typed access to config keys with errors that name the key.</summary>
    private readonly struct Reader(JsonElement root, string source)
    {
        public bool Has(string key) => root.TryGetProperty(key, out _);

        private JsonElement? Get(string key) =>
            root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

        public string String(string key, string fallback)
        {
            var v = Get(key);
            if (v is null) return fallback;
            if (v.Value.ValueKind != JsonValueKind.String) throw new ModelConfigException(source, key, $"expected a string, got {v.Value.ValueKind}");
            return v.Value.GetString()!;
        }

        public int PositiveInt(string key, int? fallback, bool allowNull = false)
        {
            var v = Get(key);
            if (v is null)
            {
                if (fallback is int f && (allowNull || !Has(key))) return f;
                throw new ModelConfigException(source, key, "missing");
            }
            if (v.Value.ValueKind != JsonValueKind.Number || !v.Value.TryGetInt32(out int n))
                throw new ModelConfigException(source, key, $"expected an integer, got {v.Value}");
            if (n <= 0) throw new ModelConfigException(source, key, $"must be positive, got {n}");
            return n;
        }

        public int TokenId(string key, int fallback)
        {
            var v = Get(key);
            if (v is null) return fallback;
            if (v.Value.ValueKind != JsonValueKind.Number || !v.Value.TryGetInt32(out int n) || n < 0)
                throw new ModelConfigException(source, key, $"expected a non-negative integer, got {v.Value}");
            return n;
        }

        public float PositiveFloat(string key, float fallback)
        {
            var v = Get(key);
            if (v is null) return fallback;
            if (v.Value.ValueKind != JsonValueKind.Number) throw new ModelConfigException(source, key, $"expected a number, got {v.Value}");
            // The model computes in fp32: a value finite as a double may still be 0 or infinite as a float.
            if (!v.Value.TryGetDouble(out double d) || !(d > 0) || !float.IsFinite((float)d) || (float)d == 0)
                throw new ModelConfigException(source, key, $"must be a positive finite number within 32-bit float range (about 1e-45 to 3.4e38), got {v.Value.GetRawText()}");
            return (float)d;
        }

        public bool Bool(string key, bool fallback)
        {
            var v = Get(key);
            if (v is null) return fallback;
            return v.Value.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new ModelConfigException(source, key, $"expected true or false, got {v.Value}"),
            };
        }
    }
}

/// <summary>
/// BTLM's linear ALiBi scaling: slopes are divided by a fixed <see cref="Factor"/>, or,
/// with <see cref="TrainSequenceLength"/>, by keyLength / trainLength once the attended
/// length exceeds the training length.
/// </summary>
public sealed record AlibiScaling(double? Factor, int? TrainSequenceLength)
{
    /// <summary>The multiplier applied to the slopes when a query attends over <paramref name="keyLength"/> positions.</summary>
    public float SlopeMultiplier(int keyLength)
    {
        if (Factor is double f) return (float)(1 / f);
        if (TrainSequenceLength is int n && keyLength > n) return (float)((double)n / keyLength);
        return 1f;
    }

    internal static AlibiScaling? Parse(JsonElement root, string source)
    {
        const string key = "alibi_scaling";
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Object) throw new ModelConfigException(source, key, "expected an object like {\"type\": \"linear\", \"factor\": 2.0}");
        string? type = v.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        if (type != "linear") throw new ModelConfigException(source, key, $"type '{type}' is not supported (only \"linear\")");
        double? factor = null;
        int? trainLength = null;
        foreach (var p in v.EnumerateObject())
        {
            switch (p.Name)
            {
                case "type": break;
                case "factor":
                    if (p.Value.ValueKind != JsonValueKind.Number || !(p.Value.GetDouble() > 1))
                        throw new ModelConfigException(source, key, $"factor must be a number > 1, got {p.Value}");
                    factor = p.Value.GetDouble();
                    break;
                case "train_seq_len":
                    if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int n) || n <= 1)
                        throw new ModelConfigException(source, key, $"train_seq_len must be an integer > 1, got {p.Value}");
                    trainLength = n;
                    break;
                default:
                    throw new ModelConfigException(source, key, $"unknown field '{p.Name}'");
            }
        }
        if ((factor is null) == (trainLength is null))
            throw new ModelConfigException(source, key, "needs exactly one of 'factor' or 'train_seq_len'");
        return new AlibiScaling(factor, trainLength);
    }
}

public sealed class ModelConfigException(string file, string? key, string message, Exception? inner = null)
    : Exception(key is null ? $"{file}: {message}" : $"{file}: key '{key}': {message}", inner)
{
    public string? Key { get; } = key;
}
