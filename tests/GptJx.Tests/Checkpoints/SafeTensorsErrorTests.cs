using GptJx.Checkpoints;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Tests.Checkpoints;

/// <summary>Broken safetensors files and indexes: each error names the file, the tensor and the reason.</summary>
public class SafeTensorsErrorTests : CheckpointTestBase
{
    private static CheckpointException Fails(string path) =>
        Assert.Throws<CheckpointException>(() => CheckpointLoader.Open(path).Dispose())!;

    [Test]
    public void TruncatedFile()
    {
        string path = CheckpointWriter.Write(Dir, CheckpointFormat.SafeTensors, SmallModel(DType.F32), Fill);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^2]); // cuts into the last non-empty tensor, "scalar"

        var e = Fails(path);
        Assert.That(e.Message, Does.Contain("model.safetensors").And.Contain("'scalar'").And.Contain("truncated"));
        Assert.That(e.TensorName, Is.EqualTo("scalar"));
        Assert.That(e.FilePath, Is.EqualTo(path));
    }

    [Test]
    public void FileShorterThanTheLengthPrefix()
    {
        string path = Path.Combine(Dir, "tiny.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.That(Fails(path).Message, Does.Contain("tiny.safetensors").And.Contain("too short for the 8-byte header length"));
    }

    [Test]
    public void EmptyFile()
    {
        string path = Path.Combine(Dir, "empty.safetensors");
        File.WriteAllBytes(path, []);
        Assert.That(Fails(path).Message, Does.Contain("empty.safetensors").And.Contain("file is empty"));
    }

    [Test]
    public void HeaderLengthBeyondFile()
    {
        string path = WriteSafeTensors("long.safetensors", "{}", [], headerLength: 1000);
        Assert.That(Fails(path).Message, Does.Contain("long.safetensors").And.Contain("header length 1000 runs beyond the end of the file of 10 bytes"));
    }

    [Test]
    public void AbsurdHeaderLength()
    {
        string path = WriteSafeTensors("huge.safetensors", "{}", [], headerLength: long.MaxValue);
        Assert.That(Fails(path).Message, Does.Contain("huge.safetensors").And.Contain("larger than the 100000000-byte limit"));
    }

    [Test]
    public void BadJson()
    {
        string path = WriteSafeTensors("bad.safetensors", "{\"a\": {\"dtype\": ", []);
        Assert.That(Fails(path).Message, Does.Contain("bad.safetensors").And.Contain("header is not valid JSON"));
    }

    [Test]
    public void HeaderNotAnObject()
    {
        string path = WriteSafeTensors("list.safetensors", "[1, 2]", []);
        Assert.That(Fails(path).Message, Does.Contain("list.safetensors").And.Contain("header is not a JSON object"));
    }

    [TestCase("I64")]
    [TestCase("U8")]
    [TestCase("F64")]
    public void UnsupportedDtype(string dtype)
    {
        string path = WriteSafeTensors("ids.safetensors",
            $$$"""{"__metadata__": {"format": "pt"}, "position_ids": {"dtype": "{{{dtype}}}", "shape": [1], "data_offsets": [0, 8]}}""", new byte[8]);
        // Recorded, not fatal: old checkpoints carry integer and bool buffers the model never reads.
        using var source = SafeTensorsReader.Open(path);
        Assert.That(source.Tensors, Is.Empty);
        Assert.That(source.UnsupportedTensors["position_ids"], Is.EqualTo($"unsupported dtype '{dtype}' (supported: F32, F16, BF16)"));
    }

    [Test]
    public void OffsetsBeyondTheData()
    {
        string path = WriteSafeTensors("short.safetensors",
            """{"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}""", new byte[16]);
        Assert.That(Fails(path).Message, Does.Contain("short.safetensors").And.Contain("'w'").And.Contain("run beyond the 16 data bytes"));
    }

    [Test]
    public void OffsetsDisagreeWithShape()
    {
        string path = WriteSafeTensors("size.safetensors",
            """{"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 8]}}""", new byte[16]);
        Assert.That(Fails(path).Message, Does.Contain("size.safetensors").And.Contain("'w'").And.Contain("span 8 bytes but BF16 [2, 3] needs 12"));
    }

    [Test]
    public void NegativeOrReversedOffsets()
    {
        string path = WriteSafeTensors("rev.safetensors",
            """{"w": {"dtype": "F16", "shape": [0], "data_offsets": [8, 4]}}""", new byte[16]);
        Assert.That(Fails(path).Message, Does.Contain("rev.safetensors").And.Contain("'w'").And.Contain("not an increasing pair"));
    }

    [Test]
    public void BadShape()
    {
        string path = WriteSafeTensors("shape.safetensors",
            """{"w": {"dtype": "F16", "shape": [-1], "data_offsets": [0, 2]}}""", new byte[2]);
        Assert.That(Fails(path).Message, Does.Contain("shape.safetensors").And.Contain("'w'").And.Contain("not a list of non-negative integers"));
    }

    [Test]
    public void MissingDtype()
    {
        string path = WriteSafeTensors("nodtype.safetensors", """{"w": {"shape": [1], "data_offsets": [0, 4]}}""", new byte[4]);
        Assert.That(Fails(path).Message, Does.Contain("nodtype.safetensors").And.Contain("'w'").And.Contain("no \"dtype\""));
    }

    [Test]
    public void DuplicateTensorName()
    {
        string path = WriteSafeTensors("dup.safetensors",
            """{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}""", new byte[8]);
        Assert.That(Fails(path).Message, Does.Contain("dup.safetensors").And.Contain("'w'").And.Contain("appears twice"));
    }

    [Test]
    public void OpenOfUnknownTensorNamesIt()
    {
        string path = CheckpointWriter.Write(Dir, CheckpointFormat.SafeTensors, SmallModel(DType.F16), Fill);
        using var source = CheckpointLoader.Open(path);
        var e = Assert.Throws<CheckpointException>(() => source.Open(new TensorInfo("lm_head.weight", DType.F16, [5, 4], path)));
        Assert.That(e!.Message, Does.Contain("model.safetensors").And.Contain("'lm_head.weight'").And.Contain("no such tensor"));
    }

    [Test]
    public void ShardMissingATensor()
    {
        CheckpointWriter.Write(Dir, CheckpointFormat.Sharded, SmallModel(DType.F32), Fill, shardBytes: 100);
        string index = Path.Combine(Dir, "model.safetensors.index.json");
        File.WriteAllText(index, """
            {"metadata": {"total_size": 80}, "weight_map": {
              "transformer.wte.weight": "model-00001-of-00003.safetensors",
              "lm_head.weight": "model-00002-of-00003.safetensors"}}
            """);
        var e = Fails(Dir);
        Assert.That(e.Message, Does.Contain("model-00002-of-00003.safetensors").And.Contain("'lm_head.weight'")
            .And.Contain("listed in model.safetensors.index.json but missing from the shard"));
    }

    [Test]
    public void ShardFileMissing()
    {
        File.WriteAllText(Path.Combine(Dir, "model.safetensors.index.json"),
            """{"weight_map": {"w": "model-00001-of-00002.safetensors"}}""");
        var e = Fails(Dir);
        Assert.That(e.Message, Does.Contain("model.safetensors.index.json").And.Contain("'w'")
            .And.Contain("shard file 'model-00001-of-00002.safetensors' does not exist"));
    }

    [Test]
    public void ShardPathOutsideTheFolder()
    {
        File.WriteAllText(Path.Combine(Dir, "model.safetensors.index.json"), """{"weight_map": {"w": "../x.safetensors"}}""");
        Assert.That(Fails(Dir).Message, Does.Contain("'w'").And.Contain("not a plain file name"));
    }

    [Test]
    public void IndexWithoutWeightMap()
    {
        File.WriteAllText(Path.Combine(Dir, "model.safetensors.index.json"), """{"metadata": {}}""");
        Assert.That(Fails(Dir).Message, Does.Contain("model.safetensors.index.json").And.Contain("no \"weight_map\""));
    }

    [Test]
    public void IndexShardsAreOpenedOncePerFile()
    {
        var specs = SmallModel(DType.BF16);
        CheckpointWriter.Write(Dir, CheckpointFormat.Sharded, specs, Fill, shardBytes: 1 << 20);
        using var source = CheckpointLoader.Open(Dir);
        Assert.That(source, Is.TypeOf<ShardedTensorSource>());
        Assert.That(source.Tensors.Select(t => t.File).Distinct().Count(), Is.EqualTo(1));
        AssertSameTensors(source, specs);
    }
}
