namespace GptJx.Model;

/// <summary>What a checkpoint tensor is, which decides how a backend stores it.</summary>
public enum WeightKind
{
    /// <summary>The token embedding table, [vocabulary, width].</summary>
    Embedding,

    /// <summary>A linear layer's matrix as GPT-2's Conv1D stores it: [in, out].</summary>
    Matrix,

    /// <summary>A linear layer's bias or a LayerNorm's gain or bias: [n].</summary>
    Vector,

    /// <summary>The untied output head, [vocabulary, width] (that is [out, in]).</summary>
    Head,

    /// <summary>The per-head ALiBi slopes, [heads, 1] (optional: the formula's values when absent).</summary>
    Slopes,
}

/// <summary>One tensor of a GPT-JX checkpoint: its name, what it is, and its shape.</summary>
public sealed record LayoutTensor(string Name, WeightKind Kind, long[] Shape)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => checked(a * b));
}

/// <summary>A LayerNorm's gain and bias.</summary>
public sealed record NormTensors(LayoutTensor Gain, LayoutTensor Bias);

/// <summary>A linear layer's [in, out] matrix and its bias.</summary>
public sealed record LinearTensors(LayoutTensor Weight, LayoutTensor Bias);

/// <summary>One transformer block's tensors.</summary>
public sealed record LayerTensors(
    NormTensors AttentionNorm, LinearTensors Qkv, LinearTensors AttentionOutput,
    NormTensors MlpNorm, LinearTensors MlpUp, LinearTensors MlpGate, LinearTensors MlpDown)
{
    /// <summary>Every tensor of the block, in the published order.</summary>
    public IEnumerable<LayoutTensor> All =>
    [
        AttentionNorm.Gain, AttentionNorm.Bias, Qkv.Weight, Qkv.Bias, AttentionOutput.Weight, AttentionOutput.Bias,
        MlpNorm.Gain, MlpNorm.Bias, MlpUp.Weight, MlpUp.Bias, MlpGate.Weight, MlpGate.Bias, MlpDown.Weight, MlpDown.Bias,
    ];
}

/// <summary>
/// The tensors of a GPT-JX checkpoint as published (BTLM's Hugging Face names and shapes): the one
/// definition that loading binds, the test-model writer writes, the parameter count sums and the
/// CUDA memory plan sizes.
/// </summary>
public sealed class CheckpointLayout(ModelConfig config)
{
    private long D => config.Width;
    private long F => config.FeedForwardWidth;
    private long V => config.VocabularySize;

    public LayoutTensor TokenEmbedding => new("transformer.wte.weight", WeightKind.Embedding, [V, D]);

    public LayerTensors Layer(int index)
    {
        string p = $"transformer.h.{index}.";
        NormTensors Norm(string name) => new(new(p + name + ".weight", WeightKind.Vector, [D]), new(p + name + ".bias", WeightKind.Vector, [D]));
        LinearTensors Linear(string name, long inFeatures, long outFeatures) =>
            new(new(p + name + ".weight", WeightKind.Matrix, [inFeatures, outFeatures]), new(p + name + ".bias", WeightKind.Vector, [outFeatures]));
        return new LayerTensors(
            Norm("ln_1"), Linear("attn.c_attn", D, 3 * D), Linear("attn.c_proj", D, D),
            Norm("ln_2"), Linear("mlp.c_fc", D, F), Linear("mlp.c_fc2", D, F), Linear("mlp.c_proj", F, D));
    }

    public NormTensors FinalNorm => new(new("transformer.ln_f.weight", WeightKind.Vector, [D]), new("transformer.ln_f.bias", WeightKind.Vector, [D]));

    public LayoutTensor Slopes => new("transformer.relative_pe.slopes", WeightKind.Slopes, [config.Heads, 1]);

    /// <summary>The output head's tensor; a checkpoint holds it only when the embeddings are untied.</summary>
    public LayoutTensor LanguageModelHead => new("lm_head.weight", WeightKind.Head, [V, D]);

    /// <summary>Every tensor a checkpoint of this config holds, in the published order.</summary>
    public IEnumerable<LayoutTensor> All
    {
        get
        {
            yield return TokenEmbedding;
            for (int l = 0; l < config.Layers; l++)
                foreach (var t in Layer(l).All) yield return t;
            yield return FinalNorm.Gain;
            yield return FinalNorm.Bias;
            yield return Slopes;
            if (!config.TieWordEmbeddings) yield return LanguageModelHead;
        }
    }

    /// <summary>
    /// <paramref name="size"/> summed over <see cref="All"/> (checked), without visiting every layer:
    /// the blocks are alike, so one counts n_layer times.
    /// </summary>
    public long Sum(Func<LayoutTensor, long> size)
    {
        long perLayer = 0;
        foreach (var t in Layer(0).All) perLayer = checked(perLayer + size(t));
        long total = checked(size(TokenEmbedding) + config.Layers * perLayer + size(FinalNorm.Gain) + size(FinalNorm.Bias) + size(Slopes));
        return config.TieWordEmbeddings ? total : checked(total + size(LanguageModelHead));
    }
}
