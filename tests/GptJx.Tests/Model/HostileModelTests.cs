using System.Runtime.InteropServices;
using GptJx.Backends.Cpu;
using GptJx.Checkpoints;
using GptJx.Generation;
using GptJx.Model;
using GptJx.Serving;
using GptJx.Tensors;
using GptJx.TestModels;
using GptJx.Tests.Checkpoints;

namespace GptJx.Tests.Model;

/// <summary>Configs and weights that are valid JSON and valid tensors but would make the model compute NaN, or overflow a count.</summary>
public class HostileModelTests
{
    private static readonly ModelConfig Shape = ModelConfig.Tiny with { Layers = 1, Width = 16, Heads = 2, FeedForwardWidth = 20, ContextLength = 32 };

    /// <summary>
    /// A small model in <paramref name="dtype"/> whose weights are <paramref name="weight"/>(tensor, element, usual value),
    /// the usual value being the ALiBi formula for the slopes and small numbers elsewhere.
    /// </summary>
    internal static TempDirectory WriteModel(Func<string, int, float, float> weight, DType dtype = DType.F32, ModelConfig? shape = null)
    {
        var s = shape ?? Shape;
        var dir = new TempDirectory();
        var slopes = Alibi.Slopes(s.Heads);
        CheckpointWriter.Write(dir.Path, CheckpointFormat.SafeTensors, TestModel.Tensors(s, dtype), (spec, bytes) =>
        {
            bool isSlopes = spec.Name.EndsWith("slopes", StringComparison.Ordinal);
            for (int i = 0; i < spec.ElementCount; i++)
            {
                float value = weight(spec.Name, i, isSlopes ? slopes[i] : 0.01f * ((i * 7919) % 13 - 6));
                switch (dtype)
                {
                    case DType.F32: MemoryMarshal.Write(bytes[(4 * i)..], value); break;
                    case DType.F16: MemoryMarshal.Write(bytes[(2 * i)..], HalfConvert.SingleToF16(value)); break;
                    default: MemoryMarshal.Write(bytes[(2 * i)..], HalfConvert.SingleToBF16(value)); break;
                }
            }
        });
        File.WriteAllText(dir.File("config.json"), TestModel.Config(s, dtype).ToJsonString());
        return dir;
    }

    private static float Usual(string name, int i, float usual) => usual;

    // ---- non-finite values refused at load ---------------------------------------------

    [TestCase(DType.F32, float.NaN)]
    [TestCase(DType.F16, float.PositiveInfinity)]
    [TestCase(DType.BF16, float.NegativeInfinity)]
    public void ANonFiniteWeightIsRefusedNamingTheTensorAndElement(DType dtype, float bad)
    {
        const string tensor = "transformer.h.0.mlp.c_fc.weight";
        using var dir = WriteModel((name, i, usual) => name == tensor && i == 123 ? bad : usual, dtype);
        var e = Assert.Throws<CheckpointException>(() => GptJxModel.Load(dir.Path, new CpuBackend()).Dispose());
        Assert.That(e!.TensorName, Is.EqualTo(tensor));
        Assert.That(e.Message, Is.EqualTo($"{dir.File("model.safetensors")}: tensor '{tensor}': element 123 is {bad}; weights must be finite"));
    }

    [Test]
    public void NonFiniteWeightsAreNamedInTheirOwnLayoutWhereverTheyAre()
    {
        // Packed panels are checked; the error maps the packed element back to the tensor's [row, column].
        (string Tensor, int Element)[] cases =
        [
            ("transformer.wte.weight", 16 * 40_000 + 7),          // [V, D], packed transposed
            ("transformer.h.0.mlp.c_fc2.weight", 16 * 20 - 1),    // second part of [c_fc | c_fc2]
            ("transformer.h.0.attn.c_attn.bias", 5),
            ("transformer.ln_f.weight", 3),
        ];
        foreach (var (tensor, element) in cases)
        {
            using var dir = WriteModel((name, i, usual) => name == tensor && i == element ? float.NaN : usual);
            var e = Assert.Throws<CheckpointException>(() => GptJxModel.Load(dir.Path, new CpuBackend()).Dispose());
            Assert.That(e!.Message, Is.EqualTo($"{dir.File("model.safetensors")}: tensor '{tensor}': element {element} is NaN; weights must be finite"));
        }
    }

    [Test]
    public void WeightsThatOverflowTheTypeTheyAreKeptInAreRefused()
    {
        const string tensor = "transformer.h.0.attn.c_proj.weight";
        using var dir = WriteModel((name, i, usual) => name == tensor && i == 9 ? 3.4e38f : usual);
        using (GptJxModel.Load(dir.Path, new CpuBackend())) { }   // finite in fp32
        var e = Assert.Throws<CheckpointException>(() => GptJxModel.Load(dir.Path, new CpuBackend(DType.BF16)).Dispose());
        Assert.That(e!.Message, Does.EndWith($"tensor '{tensor}': element 9 is {3.4e38f}, beyond the range of bf16, the type the weights are kept in; weights must be finite"));
    }

    [Test]
    public void ABackendThatDoesNotCheckWeightsGetsThemChecked()
    {
        const string tensor = "transformer.h.0.ln_2.bias";
        using var dir = WriteModel((name, i, usual) => name == tensor && i == 1 ? float.PositiveInfinity : usual);
        var e = Assert.Throws<CheckpointException>(() => GptJxModel.Load(dir.Path, new EmulatedGraphBackend()).Dispose());
        Assert.That(e!.Message, Is.EqualTo($"{dir.File("model.safetensors")}: tensor '{tensor}': element 1 is {float.PositiveInfinity}; weights must be finite"));
    }

    [Test]
    public void NaNSlopesAreRefused()
    {
        // The slope comparison used to be false for NaN, which let it through.
        using var dir = WriteModel((name, i, usual) => name.EndsWith("slopes", StringComparison.Ordinal) && i == 1 ? float.NaN : usual);
        var e = Assert.Throws<CheckpointException>(() => GptJxModel.Load(dir.Path, new CpuBackend()).Dispose());
        Assert.That(e!.Message, Does.Contain("tensor 'transformer.relative_pe.slopes': slope of head 1 is NaN, but ALiBi for 2 heads gives"));
    }

    [TestCase("layer_norm_epsilon", "1e300")]
    [TestCase("layer_norm_epsilon", "1e-50")]
    [TestCase("layer_norm_epsilon", "1e400")]
    [TestCase("mup_output_alpha", "1e39")]
    [TestCase("mup_embeddings_scale", "4e38")]
    public void ConfigFloatsMustBeFiniteAsFloats(string key, string value)
    {
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(WithKey(key, value), "m/config.json"));
        Assert.That(e!.Key, Is.EqualTo(key));
        Assert.That(e.Message, Is.EqualTo($"m/config.json: key '{key}': must be a positive finite number within 32-bit float range (about 1e-45 to 3.4e38), got {value}"));
    }

    [Test]
    public void AnOutputScaleThatOverflowsAsAProductIsRefused()
    {
        string json = WithKeys(("mup_output_alpha", "1e30"), ("mup_width_scale", "1e10"));
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(json, "m/config.json"));
        Assert.That(e!.Key, Is.EqualTo("mup_output_alpha"));
        Assert.That(e.Message, Does.Contain("x mup_width_scale").And.Contain("is beyond the range of a 32-bit float"));
    }

    private static string WithKey(string key, string value) => WithKeys((key, value));

    /// <summary>The published 3B config with keys set to raw JSON values.</summary>
    private static string WithKeys(params (string Key, string Value)[] changes)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(ModelConfigTests.Btlm3B)!.AsObject();
        foreach (var (key, value) in changes) json[key] = System.Text.Json.Nodes.JsonNode.Parse(value);
        return json.ToJsonString();
    }

    // ---- integer overflow ---------------------------------------------------------------

    [Test]
    public void SizesWhoseParameterCountOverflowsAreRefused()
    {
        string json = WithKeys(("n_layer", "2147483647"), ("n_embd", "2147483520"), ("n_head", "1"), ("n_inner", "2147483647"));
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(json, "m/config.json"));
        Assert.That(e!.Message, Is.EqualTo("m/config.json: n_layer 2147483647, n_embd 2147483520, n_inner 2147483647 and vocab_size 50257 give more parameters than a 64-bit count holds"));
    }

    // ---- ids outside the vocabulary ------------------------------------------------------

    [TestCase("bos_token_id", 50257)]
    [TestCase("eos_token_id", 99999)]
    public void SpecialTokenIdsMustBeInTheVocabulary(string key, int id)
    {
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(WithKey(key, id.ToString()), "m/config.json"));
        Assert.That(e!.Message, Is.EqualTo($"m/config.json: key '{key}': {id} is outside the vocabulary of 50257 (vocab_size)"));
    }

    [Test]
    public void ATokenizerSmallerThanTheModelsVocabularyIsRefused()
    {
        using var dir = WriteModel(Usual, shape: Shape with { VocabularySize = 50300 });
        var e = Assert.Throws<ModelConfigException>(() => GptJxModel.Load(dir.Path, new CpuBackend()).Dispose());
        Assert.That(e!.Key, Is.EqualTo("vocab_size"));
        Assert.That(e.Message, Does.StartWith($"{dir.File("config.json")}: key 'vocab_size': 50300 is larger than the tokenizer's vocabulary of 50257"));
    }

    // ---- unclear errors and resource traps ------------------------------------------------

    [Test]
    public void TextThatIsNotUtf8InTheConfigIsNamed()
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(ModelConfigTests.Btlm3B.Replace("\"btlm\"", "\"bt\u0001m\"")).ToList();
        int at = bytes.IndexOf(1);
        bytes[at] = 0xFF;
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("config.json"), bytes.ToArray());
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Load(dir.Path));
        Assert.That(e!.Message, Is.EqualTo($"{dir.File("config.json")}: key 'model_type': is not valid text (invalid UTF-8 or an unpaired surrogate escape)"));

        var surrogate = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(ModelConfigTests.Btlm3B.Replace("\"use_cache\"", "\"\\ud800\""), "m/config.json"));
        Assert.That(surrogate!.Message, Is.EqualTo("m/config.json: a property name at the top level is not valid text (invalid UTF-8 or an unpaired surrogate escape)"));
    }

    [Test]
    public void AFifoNamedConfigJsonIsRefusedWithoutBlocking()
    {
        using var dir = new TempDirectory();
        HostileCheckpointTests.MakeFifo(dir.File("config.json"));
        var load = Task.Run(() => Assert.Throws<ModelConfigException>(() => ModelConfig.Load(dir.Path))!);
        Assert.That(load.Wait(TimeSpan.FromSeconds(60)), Is.True, "reading a FIFO blocks until a writer comes");
        Assert.That(load.Result.Message, Is.EqualTo($"{dir.File("config.json")}: is a FIFO (named pipe), not a regular file"));
    }

    // ---- logits that turn non-finite while running -----------------------------------------

    /// <summary>Finite weights (the largest fp32 values) whose activations overflow: the load checks pass, the logits do not.</summary>
    internal static TempDirectory OverflowingModel() => WriteModel((name, _, usual) => name.EndsWith("slopes", StringComparison.Ordinal) ? usual : 3e38f);

    [Test]
    public void NonFiniteLogitsEndGenerationWithAClearError()
    {
        using var dir = OverflowingModel();
        using var model = GptJxModel.Load(dir.Path, new CpuBackend());
        var e = Assert.Throws<NonFiniteLogitsException>(() => TextGenerator.Generate(model, [464, 318], new GenerationOptions()).ToList());
        Assert.That(e!.Message, Does.StartWith("the model's logits are not finite (token id ").And.EndWith("): its activations overflowed on this input"));

        using var engine = new InferenceEngine(model, new EngineOptions { MaxBatchSize = 2 });
        Assert.That(async () => await engine.CompleteAsync(GenerationRequest.FromText("Hello")), Throws.TypeOf<NonFiniteLogitsException>());
        Assert.That(engine.GetStatistics().FailedRequests, Is.EqualTo(1));
    }

    [Test]
    public void ABackendThatPicksTokensReportsNonFiniteLogitsToo()
    {
        using var dir = OverflowingModel();
        var backend = new EmulatedGraphBackend();
        using var model = GptJxModel.Load(dir.Path, backend);
        Assert.Throws<NonFiniteLogitsException>(() => TextGenerator.Generate(model, [464, 318], new GenerationOptions()).ToList());
        using var engine = new InferenceEngine(model, new EngineOptions { MaxBatchSize = 2 });
        Assert.That(async () => await engine.CompleteAsync(GenerationRequest.FromText("Hello")), Throws.TypeOf<NonFiniteLogitsException>()
            .With.Message.StartsWith("the model's logits are not finite (the backend picked no token, id -1)"));
        Assert.That(backend.Picks, Is.EqualTo(2), "both picked on the backend");
    }

    [Test]
    public void TheSamplerRefusesNonFiniteLogitsAndDevicePicksOutsideTheVocabulary()
    {
        var sampler = new Sampler(new GenerationOptions(), 4);
        var e = Assert.Throws<NonFiniteLogitsException>(() => sampler.Next([1f, 2f, float.NaN, 0f]));
        Assert.That(e!.Message, Does.StartWith("the model's logits are not finite (token id 2 has NaN)"));
        Assert.That(NonFiniteLogitsException.CheckPicked(3, 4), Is.EqualTo(3));
        Assert.Throws<NonFiniteLogitsException>(() => NonFiniteLogitsException.CheckPicked(int.MaxValue, 4));
    }
}
