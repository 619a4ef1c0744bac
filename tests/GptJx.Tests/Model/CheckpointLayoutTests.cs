using System.Runtime.InteropServices;
using GptJx.Backends.Cpu;
using GptJx.Checkpoints;
using GptJx.Model;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Tests.Model;

/// <summary>The one checkpoint layout: what the loader binds, the writer writes and the parameter count sums.</summary>
public class CheckpointLayoutTests
{
    private static readonly ModelConfig Small = ModelConfig.Tiny with { Layers = 2, Width = 16, Heads = 2, FeedForwardWidth = 20, ContextLength = 32 };

    [Test]
    public void ThePresetIsThePublishedConfig()
    {
        var published = ModelConfig.Parse(ModelConfigTests.Btlm3B);
        Assert.That(published with { UnknownKeys = ModelConfig.GptJx3B.UnknownKeys }, Is.EqualTo(ModelConfig.GptJx3B));
        Assert.That(ModelConfig.Preset("gpt-jx-3b"), Is.SameAs(ModelConfig.GptJx3B));
        Assert.That(ModelConfig.Preset("tiny"), Is.SameAs(ModelConfig.Tiny));
        var e = Assert.Throws<InvalidArgumentException>(() => ModelConfig.Preset("huge"))!;
        Assert.That(e.Message, Is.EqualTo("preset 'huge' is not one of tiny, gpt-jx-3b"));
    }

    [Test]
    public void TheWrittenConfigReadsBackAsTheConfig()
    {
        foreach (var config in new[]
        {
            ModelConfig.GptJx3B, ModelConfig.Tiny,
            Small with { TieWordEmbeddings = false, AlibiScaling = new AlibiScaling(null, 16), ScaleQkDotByD = false, LayerNormEpsilon = 1e-6f },
            Small with { AlibiScaling = new AlibiScaling(2.5, null), ScaleAttentionByInverseLayerIndex = true, BosTokenId = 3, EosTokenId = 4 },
        })
        {
            var read = ModelConfig.Parse(TestModel.Config(config, DType.BF16).ToJsonString());
            Assert.That(read with { UnknownKeys = config.UnknownKeys }, Is.EqualTo(config));
        }
    }

    [Test]
    public void ThePublishedModelHasItsPublishedTensors()
    {
        var layout = ModelConfig.GptJx3B.Layout;
        var all = layout.All.ToList();
        Assert.That(all, Has.Count.EqualTo(1 + 32 * 14 + 3), "embedding, 14 per block, final norm and slopes; the head is tied");
        Assert.That(all.Select(t => t.Name), Is.Unique);
        Assert.That(all.Sum(t => t.ElementCount), Is.EqualTo(ModelConfig.GptJx3B.ParameterCount), "the count without enumerating layers sums the same");
        var block = layout.Layer(31);
        Assert.That(block.Qkv.Weight.Name, Is.EqualTo("transformer.h.31.attn.c_attn.weight"));
        Assert.That(block.Qkv.Weight.Shape, Is.EqualTo(new long[] { 2560, 7680 }), "Conv1D: [in, out]");
        Assert.That(block.MlpDown.Weight.Shape, Is.EqualTo(new long[] { 6826, 2560 }));
        Assert.That(layout.Slopes.Shape, Is.EqualTo(new long[] { 32, 1 }));

        var untied = (ModelConfig.GptJx3B with { TieWordEmbeddings = false }).Layout.All.ToList();
        Assert.That(untied[^1].Name, Is.EqualTo("lm_head.weight"));
        Assert.That(untied[^1].Shape, Is.EqualTo(new long[] { 50257, 2560 }));
    }

    /// <summary>
    /// Every tensor of the layout is bound: without it the checkpoint is refused with its name
    /// (the slopes, which the formula can supply, are the one optional tensor).
    /// </summary>
    [Test]
    public void LoadingBindsEveryTensorOfTheLayout()
    {
        var config = Small with { TieWordEmbeddings = false };
        var tensors = TestModel.Tensors(config, DType.F32);
        using (var whole = Write(config, tensors))
        {
            using var model = GptJxModel.Load(whole.Path, new CpuBackend());
            Assert.That(model.Weights.UnusedTensors, Is.Empty, "the layout has no tensor the loader ignores");
        }
        foreach (var missing in config.Layout.All.Where(t => t.Kind != WeightKind.Slopes))
        {
            using var dir = Write(config, tensors.Where(t => t.Name != missing.Name).ToList());
            var e = Assert.Throws<CheckpointException>(() => GptJxModel.Load(dir.Path, new CpuBackend()).Dispose())!;
            Assert.That(e.TensorName, Is.EqualTo(missing.Name));
        }
    }

    private static TempDirectory Write(ModelConfig config, List<TensorSpec> tensors)
    {
        var dir = new TempDirectory();
        CheckpointWriter.Write(dir.Path, CheckpointFormat.SafeTensors, tensors, (spec, bytes) =>
        {
            var values = MemoryMarshal.Cast<byte, float>(bytes);
            if (spec.Name == config.Layout.Slopes.Name) Alibi.Slopes(config.Heads).CopyTo(values);
            else values.Fill(0.01f);
        });
        File.WriteAllText(dir.File("config.json"), TestModel.Config(config, DType.F32).ToJsonString());
        return dir;
    }
}
