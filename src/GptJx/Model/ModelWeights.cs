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

        var layout = config.Layout;
        var owned = new List<IDisposable>();
        T Own<T>(T item) where T : IDisposable { owned.Add(item); return item; }
        INorm Norm(NormTensors norm)
        {
            var (gain, bias) = (binder.Get(norm.Gain), binder.Get(norm.Bias));
            Advance(gain, bias);
            return Own(backend.LoadNorm(gain, bias));
        }
        // Several layers side by side (the MLP's up and gate projections) become one linear layer.
        ILinear Linear(params LinearTensors[] parts)
        {
            var ws = parts.Select(p => binder.Get(p.Weight)).ToArray();
            var bs = parts.Select(p => binder.Get(p.Bias)).ToArray();
            Advance([.. ws, .. bs]);
            return Own(backend.LoadLinear(ws, bs, WeightLayout.InOut));
        }
        try
        {
            var wte = binder.Get(layout.TokenEmbedding);
            var embedding = Own(backend.LoadEmbedding(wte));
            Advance(wte);

            var layers = new List<LayerWeights>(config.Layers);
            for (int l = 0; l < config.Layers; l++)
            {
                var t = layout.Layer(l);
                layers.Add(new LayerWeights(Norm(t.AttentionNorm), Linear(t.Qkv), Linear(t.AttentionOutput),
                    Norm(t.MlpNorm), Linear(t.MlpUp, t.MlpGate), Linear(t.MlpDown)));
            }
            var finalNorm = Norm(layout.FinalNorm);

            ILinear head;
            var lmHead = layout.LanguageModelHead;
            if (config.TieWordEmbeddings)
            {
                // A tied checkpoint may still carry a copy of the embedding as the head.
                head = Own(backend.LoadLinear([wte], null, WeightLayout.OutIn));
                binder.MarkUsed(lmHead.Name);
            }
            else
            {
                if (!source.TryGetTensor(lmHead.Name, out _))
                    throw new CheckpointException(source.Location, lmHead.Name, "missing, and tie_word_embeddings is false");
                var lm = binder.Get(lmHead);
                head = Own(backend.LoadLinear([lm], null, WeightLayout.OutIn));
                Advance(lm);
            }

            var slopes = binder.Slopes(layout.Slopes);
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

        public TensorData Get(LayoutTensor tensor)
        {
            string name = tensor.Name;
            if (!source.TryGetTensor(name, out var info))
                throw new CheckpointException(source.Location, name,
                    source.UnsupportedTensors.TryGetValue(name, out var reason) ? reason : "missing from the checkpoint");
            if (!info.Shape.SequenceEqual(tensor.Shape))
                throw new CheckpointException(info.File, name, $"has shape {info.ShapeText}, expected [{string.Join(", ", tensor.Shape)}]");
            _used.Add(name);
            var data = source.Open(info);
            if (checkFinite) FiniteWeights.Require(data);
            return data;
        }

        /// <summary>The stored slopes (checked against the formula), or the formula's when the checkpoint has none.</summary>
        public float[] Slopes(LayoutTensor tensor)
        {
            string name = tensor.Name;
            float[] formula = Alibi.Slopes(config.Heads);
            if (!source.TryGetTensor(name, out var info)) return formula;
            if (!(info.Shape.SequenceEqual(tensor.Shape) || info.Shape.SequenceEqual([(long)config.Heads])))   // [heads] is accepted too
                throw new CheckpointException(info.File, name, $"has shape {info.ShapeText}, expected [{string.Join(", ", tensor.Shape)}]");
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
