using GptJx.Backends;
using GptJx.Checkpoints;
using GptJx.Tensors;

namespace GptJx.Model;

/// <summary>One transformer block's weights, bound on a backend.</summary>
public sealed record LayerWeights(
    INorm AttentionNorm,
    ILinear QkvProjection,
    ILinear AttentionOutput,
    INorm MlpNorm,
    ILinear MlpUpAndGate,
    ILinear MlpDown);

/// <summary>
/// The model's weights bound onto a backend. Binding checks every tensor's presence,
/// shape and type against the config, that every weight is finite, and the stored ALiBi
/// slopes against the formula.
/// </summary>
public sealed class ModelWeights : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    public required IEmbedding TokenEmbedding { get; init; }
    public required IReadOnlyList<LayerWeights> Layers { get; init; }
    public required INorm FinalNorm { get; init; }
    public required ILinear LanguageModelHead { get; init; }

    /// <summary>Per-head ALiBi slopes in fp32 (stored values when the checkpoint has them).</summary>
    public required float[] AlibiSlopes { get; init; }

    /// <summary>Checkpoint tensors the engine did not use (legacy attention buffers excluded).</summary>
    public IReadOnlyList<string> UnusedTensors { get; private init; } = [];

    /// <summary>The element type of the checkpoint's weight matrices.</summary>
    public DType CheckpointType { get; private init; }

    public static ModelWeights Bind(ModelConfig config, ITensorSource source, IBackend backend, IProgress<double>? progress = null)
    {
        var binder = new Binder(config, source, checkFinite: backend is not IFiniteWeightCheck);
        long total = source.Tensors.Sum(t => t.ByteLength), done = 0;
        void Advance(params TensorData[] parts)
        {
            done += parts.Sum(p => p.Length);
            progress?.Report(total == 0 ? 1 : Math.Min(1, (double)done / total));
        }

        int d = config.Width, f = config.FeedForwardWidth, v = config.VocabularySize;
        var owned = new List<IDisposable>();
        T Own<T>(T item) where T : IDisposable { owned.Add(item); return item; }
        try
        {
            var wte = binder.Matrix("transformer.wte.weight", v, d);
            var embedding = Own(backend.LoadEmbedding(wte));
            Advance(wte);

            var layers = new List<LayerWeights>(config.Layers);
            for (int l = 0; l < config.Layers; l++)
            {
                string p = $"transformer.h.{l}.";
                INorm Norm(string name)
                {
                    var (g, b) = (binder.Vector(p + name + ".weight", d), binder.Vector(p + name + ".bias", d));
                    Advance(g, b);
                    return Own(backend.LoadNorm(g, b));
                }
                ILinear Linear(string[] names, int inFeatures, int outFeatures)
                {
                    var ws = names.Select(n => binder.Matrix(p + n + ".weight", inFeatures, outFeatures)).ToArray();
                    var bs = names.Select(n => binder.Vector(p + n + ".bias", outFeatures)).ToArray();
                    Advance([.. ws, .. bs]);
                    return Own(backend.LoadLinear(ws, bs, WeightLayout.InOut));
                }
                var ln1 = Norm("ln_1");
                var qkv = Linear(["attn.c_attn"], d, 3 * d);
                var proj = Linear(["attn.c_proj"], d, d);
                var ln2 = Norm("ln_2");
                var upGate = Linear(["mlp.c_fc", "mlp.c_fc2"], d, f);
                var down = Linear(["mlp.c_proj"], f, d);
                layers.Add(new LayerWeights(ln1, qkv, proj, ln2, upGate, down));
            }

            var (lnfG, lnfB) = (binder.Vector("transformer.ln_f.weight", d), binder.Vector("transformer.ln_f.bias", d));
            var finalNorm = Own(backend.LoadNorm(lnfG, lnfB));
            Advance(lnfG, lnfB);

            ILinear head;
            if (config.TieWordEmbeddings || !source.TryGetTensor("lm_head.weight", out _))
            {
                if (!config.TieWordEmbeddings)
                    throw new CheckpointException(source.Location, "lm_head.weight", "missing, and tie_word_embeddings is false");
                head = Own(backend.LoadLinear([wte], null, WeightLayout.OutIn));
                binder.MarkUsed("lm_head.weight");
            }
            else
            {
                var lm = binder.Matrix("lm_head.weight", v, d);
                head = Own(backend.LoadLinear([lm], null, WeightLayout.OutIn));
                Advance(lm);
            }

            var slopes = binder.Slopes();
            progress?.Report(1);
            var weights = new ModelWeights
            {
                TokenEmbedding = embedding,
                Layers = layers,
                FinalNorm = finalNorm,
                LanguageModelHead = head,
                AlibiSlopes = slopes,
                UnusedTensors = binder.Unused(),
                CheckpointType = wte.Info.DType,
            };
            weights._owned.AddRange(owned);
            return weights;
        }
        catch
        {
            foreach (var o in owned) o.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var o in _owned) o.Dispose();
        _owned.Clear();
    }

    /// <summary>Looks tensors up by name and checks their shapes (and values, unless the backend does), remembering which were used.</summary>
    private sealed class Binder(ModelConfig config, ITensorSource source, bool checkFinite)
    {
        private readonly HashSet<string> _used = [];

        public void MarkUsed(string name) => _used.Add(name);

        private TensorData Get(string name, params long[] shape)
        {
            if (!source.TryGetTensor(name, out var info))
                throw new CheckpointException(source.Location, name,
                    source.UnsupportedTensors.TryGetValue(name, out var reason) ? reason : "missing from the checkpoint");
            if (!info.Shape.SequenceEqual(shape))
                throw new CheckpointException(info.File, name, $"has shape {info.ShapeText}, expected [{string.Join(", ", shape)}]");
            _used.Add(name);
            var data = source.Open(info);
            if (checkFinite) FiniteWeights.Require(data);
            return data;
        }

        public TensorData Matrix(string name, long rows, long columns) => Get(name, rows, columns);

        public TensorData Vector(string name, long length) => Get(name, length);

        public float[] Slopes()
        {
            const string name = "transformer.relative_pe.slopes";
            float[] formula = Alibi.Slopes(config.Heads);
            if (!source.TryGetTensor(name, out var info)) return formula;
            if (!(info.Shape.SequenceEqual([config.Heads, 1L]) || info.Shape.SequenceEqual([(long)config.Heads])))
                throw new CheckpointException(info.File, name, $"has shape {info.ShapeText}, expected [{config.Heads}, 1]");
            _used.Add(name);
            var bytes = source.Open(info).Bytes;
            var stored = new float[config.Heads];
            double tolerance = Alibi.Tolerance(info.DType);
            for (int h = 0; h < stored.Length; h++)
            {
                stored[h] = HalfConvert.Read(bytes, info.DType, h);
                if (!(Math.Abs(stored[h] - formula[h]) <= tolerance * formula[h]))   // written so that NaN fails too
                    throw new CheckpointException(info.File, name,
                        $"slope of head {h} is {stored[h]:R}, but ALiBi for {config.Heads} heads gives {formula[h]:R} (beyond {info.DType.Name()} rounding)");
            }
            return stored;
        }

        public IReadOnlyList<string> Unused() => source.Tensors
            .Select(t => t.Name)
            .Concat(source.UnsupportedTensors.Keys)
            .Where(n => !_used.Contains(n) && !IsLegacyBuffer(n))
            .Order(StringComparer.Ordinal)
            .ToList();

        private static bool IsLegacyBuffer(string name) =>
            name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attn.masked_bias", StringComparison.Ordinal);
    }
}
