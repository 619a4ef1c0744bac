using System.Runtime.InteropServices;
using GptJx.Backends.Cpu;
using GptJx.Checkpoints;
using GptJx.Model;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Tests.Model;

/// <summary>Checkpoints that do not fit their config are refused with the file and tensor named.</summary>
public class ModelLoadErrorTests
{
    private static readonly ModelConfig Shape = ModelConfig.Tiny with { Layers = 1, Width = 16, Heads = 2, FeedForwardWidth = 20, ContextLength = 32 };

    /// <summary>Writes the small model with its tensor list edited by <paramref name="edit"/>; slopes get <paramref name="slopes"/>.</summary>
    private static TempDirectory Write(Func<List<TensorSpec>, List<TensorSpec>> edit, float[]? slopes = null)
    {
        var dir = new TempDirectory();
        var specs = edit(TestModel.Tensors(Shape, DType.F32));
        CheckpointWriter.Write(dir.Path, CheckpointFormat.SafeTensors, specs, (spec, bytes) =>
        {
            var values = MemoryMarshal.Cast<byte, float>(bytes);
            if (spec.Name.EndsWith("slopes", StringComparison.Ordinal)) (slopes ?? Alibi.Slopes(Shape.Heads)).CopyTo(values);
            else for (int i = 0; i < values.Length; i++) values[i] = 0.01f * ((i * 7919) % 13 - 6);
        });
        File.WriteAllText(dir.File("config.json"), TestModel.Config(Shape, DType.F32).ToJsonString());
        return dir;
    }

    private static Exception LoadError(TempDirectory dir) =>
        Assert.Catch(() => GptJxModel.Load(dir.Path, new CpuBackend()).Dispose())!;

    [Test]
    public void TheUnchangedCheckpointLoads()
    {
        using var dir = Write(specs => specs);
        using var model = GptJxModel.Load(dir.Path, new CpuBackend());
        Assert.That(model.Config.Layers, Is.EqualTo(1));
    }

    [Test]
    public void MissingTensorIsNamed()
    {
        using var dir = Write(specs => specs.Where(s => s.Name != "transformer.h.0.mlp.c_fc2.weight").ToList());
        var e = LoadError(dir);
        Assert.That(e, Is.InstanceOf<CheckpointException>());
        Assert.That(e.Message, Does.Contain("tensor 'transformer.h.0.mlp.c_fc2.weight'").And.Contain("missing from the checkpoint"));
    }

    [Test]
    public void MisshapedTensorIsNamedWithBothShapes()
    {
        using var dir = Write(specs => specs.Select(s => s.Name == "transformer.h.0.attn.c_attn.weight" ? s with { Shape = [48, 16] } : s).ToList());
        var e = LoadError(dir);
        Assert.That(e.Message, Does.Contain("model.safetensors").And.Contain("tensor 'transformer.h.0.attn.c_attn.weight'")
            .And.Contain("has shape [48, 16], expected [16, 48]"));
    }

    [Test]
    public void SlopesThatDisagreeWithTheFormulaAreRefused()
    {
        var slopes = Alibi.Slopes(Shape.Heads);
        slopes[1] *= 1.01f;
        using var dir = Write(specs => specs, slopes);
        var e = LoadError(dir);
        Assert.That(e.Message, Does.Contain("tensor 'transformer.relative_pe.slopes'").And.Contain("slope of head 1").And.Contain("beyond fp32 rounding"));
    }

    [Test]
    public void TensorOfAnUnsupportedTypeIsNamedWhenTheModelNeedsIt()
    {
        using var dir = Write(specs => specs);
        // Relabel one tensor as int32 in the header (same element size, so offsets stay valid).
        var path = dir.File("model.safetensors");
        var bytes = File.ReadAllBytes(path);
        var header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)BitConverter.ToInt64(bytes, 0));
        int at = header.IndexOf("\"transformer.h.0.ln_2.weight\"", StringComparison.Ordinal);
        int dtype = header.IndexOf("\"F32\"", at, StringComparison.Ordinal);
        bytes[8 + dtype + 1] = (byte)'I';
        File.WriteAllBytes(path, bytes);

        var e = LoadError(dir);
        Assert.That(e.Message, Does.Contain("tensor 'transformer.h.0.ln_2.weight'").And.Contain("unsupported dtype 'I32' (supported: F32, F16, BF16)"));
    }

    [Test]
    public void UntiedConfigWithoutHeadIsRefused()
    {
        using var dir = Write(specs => specs);
        File.WriteAllText(dir.File("config.json"), TestModel.Config(Shape with { TieWordEmbeddings = false }, DType.F32).ToJsonString());
        var e = LoadError(dir);
        Assert.That(e.Message, Does.Contain("tensor 'lm_head.weight'").And.Contain("missing, and tie_word_embeddings is false"));
    }

    [Test]
    public void UnusedTensorsAreReportedAsWarnings()
    {
        using var dir = Write(specs => [.. specs, new TensorSpec("transformer.extra.weight", DType.F32, [4]), new TensorSpec("transformer.h.0.attn.masked_bias", DType.F32, [1])]);
        var warnings = new List<string>();
        using var model = GptJxModel.Load(dir.Path, new CpuBackend(), new ModelLoadOptions { Warning = warnings.Add });
        Assert.That(warnings, Has.Count.EqualTo(1));
        Assert.That(warnings[0], Does.Contain("tensor 'transformer.extra.weight' is not used"));
    }
}
