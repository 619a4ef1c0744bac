using GptJx.Checkpoints;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Tests.Checkpoints;

public class CheckpointLoaderTests : CheckpointTestBase
{
    [Test]
    public void FolderWithoutWeights()
    {
        File.WriteAllText(Path.Combine(Dir, "config.json"), "{}");
        var e = Assert.Throws<CheckpointException>(() => CheckpointLoader.Open(Dir));
        Assert.That(e!.Message, Does.Contain(Dir).And.Contain("no weights found")
            .And.Contain("model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json"));
    }

    [Test]
    public void MissingPath()
    {
        string path = Path.Combine(Dir, "nowhere");
        var e = Assert.Throws<CheckpointException>(() => CheckpointLoader.Open(path));
        Assert.That(e!.Message, Does.Contain("nowhere").And.Contain("no such file or folder"));
    }

    [Test]
    public void SafeTensorsPreferredOverBin()
    {
        CheckpointWriter.Write(Dir, CheckpointFormat.PyTorchBin, [new("old", DType.F32, [1])], Fill);
        CheckpointWriter.Write(Dir, CheckpointFormat.SafeTensors, [new("new", DType.F32, [1])], Fill);
        using var source = CheckpointLoader.Open(Dir);
        Assert.That(source, Is.TypeOf<SafeTensorsReader>());
        Assert.That(source.Tensors.Single().Name, Is.EqualTo("new"));
    }

    [TestCase(CheckpointFormat.SafeTensors, typeof(SafeTensorsReader))]
    [TestCase(CheckpointFormat.Sharded, typeof(ShardedTensorSource))]
    [TestCase(CheckpointFormat.PyTorchBin, typeof(PyTorchBinReader))]
    public void FilePathsAreAcceptedDirectly(CheckpointFormat format, Type type)
    {
        var specs = SmallModel(DType.F16);
        string entry = CheckpointWriter.Write(Dir, format, specs, Fill);
        using var source = CheckpointLoader.Open(entry);
        Assert.That(source, Is.TypeOf(type));
        AssertSameTensors(source, specs);
    }

    [Test]
    public void ShardedPyTorchBins()
    {
        // pytorch_model.bin.index.json pointing at torch archives works like the safetensors index.
        var first = new List<TensorSpec> { new("a", DType.F32, [2]) };
        var second = new List<TensorSpec> { new("b", DType.BF16, [3]) };
        string sub1 = Path.Combine(Dir, "1"), sub2 = Path.Combine(Dir, "2");
        File.Move(CheckpointWriter.Write(sub1, CheckpointFormat.PyTorchBin, first, Fill), Path.Combine(Dir, "pytorch_model-00001-of-00002.bin"));
        File.Move(CheckpointWriter.Write(sub2, CheckpointFormat.PyTorchBin, second, Fill), Path.Combine(Dir, "pytorch_model-00002-of-00002.bin"));
        File.WriteAllText(Path.Combine(Dir, "pytorch_model.bin.index.json"), """
            {"metadata": {"total_size": 14}, "weight_map": {
              "a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"}}
            """);
        using var source = CheckpointLoader.Open(Dir);
        AssertSameTensors(source, [.. first, .. second]);
    }

    [Test]
    public void DisposedSourceRefusesToServeBytes()
    {
        string entry = CheckpointWriter.Write(Dir, CheckpointFormat.SafeTensors, SmallModel(DType.F32), Fill);
        var source = CheckpointLoader.Open(entry);
        var info = source.Tensors.First();
        source.Dispose();
        Assert.Throws<ObjectDisposedException>(() => source.Open(info));
    }
}
