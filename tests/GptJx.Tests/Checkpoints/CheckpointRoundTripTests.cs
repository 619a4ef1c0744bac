using System.Text.Json;
using GptJx.Checkpoints;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Tests.Checkpoints;

/// <summary>Every format and dtype: what the writer writes, the readers read back byte for byte.</summary>
public class CheckpointRoundTripTests : CheckpointTestBase
{
    [Test]
    public void RoundTrip(
        [Values] CheckpointFormat format,
        [Values(DType.F32, DType.F16, DType.BF16)] DType dtype)
    {
        var specs = SmallModel(dtype);
        string entry = CheckpointWriter.Write(Dir, format, specs, Fill, shardBytes: 64);

        using var source = CheckpointLoader.Open(Dir);
        Assert.That(source.Location, Is.EqualTo(entry));
        AssertSameTensors(source, specs);
        // Tied embeddings: the writer was not given lm_head, and no reader invents one.
        Assert.That(source.TryGetTensor("lm_head.weight", out _), Is.False);
        Assert.That(Directory.GetFiles(Dir, "*.partial"), Is.Empty);
    }

    [Test]
    public void MixedDtypesInOneFile([Values] CheckpointFormat format)
    {
        List<TensorSpec> specs = [new("a", DType.F32, [3]), new("b", DType.BF16, [2, 2]), new("c", DType.F16, [1])];
        CheckpointWriter.Write(Dir, format, specs, Fill);
        using var source = CheckpointLoader.Open(Dir);
        AssertSameTensors(source, specs);
    }

    [Test]
    public void ShardedWritesShardsAndIndex()
    {
        var specs = SmallModel(DType.F32); // tensors of 80, 16, 192, 8, 4 and 0 bytes
        CheckpointWriter.Write(Dir, CheckpointFormat.Sharded, specs, Fill, shardBytes: 100);

        var shards = Directory.GetFiles(Dir, "model-*.safetensors").Select(Path.GetFileName).Order().ToList();
        Assert.That(shards, Is.EqualTo(new[]
        {
            "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
        }));
        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Dir, "model.safetensors.index.json")));
        Assert.That(index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64(), Is.EqualTo(300));
        var map = index.RootElement.GetProperty("weight_map");
        Assert.That(map.GetProperty("transformer.wte.weight").GetString(), Is.EqualTo("model-00001-of-00003.safetensors"));
        Assert.That(map.GetProperty("transformer.h.0.attn.c_attn.weight").GetString(), Is.EqualTo("model-00002-of-00003.safetensors"));
        Assert.That(map.GetProperty("empty").GetString(), Is.EqualTo("model-00003-of-00003.safetensors"));

        using var source = CheckpointLoader.Open(Dir);
        AssertSameTensors(source, specs);
        Assert.That(source.Tensors.Select(t => Path.GetFileName(t.File)).Distinct().Count(), Is.EqualTo(3));
    }

    [Test]
    public void ProgressCountsEveryByte()
    {
        var specs = SmallModel(DType.BF16);
        var reports = new List<long>();
        CheckpointWriter.Write(Dir, CheckpointFormat.PyTorchBin, specs, Fill, new SyncProgress(reports));
        Assert.That(reports, Is.Ordered);
        Assert.That(reports[^1], Is.EqualTo(specs.Sum(s => s.ByteLength)));
    }

    [Test]
    public void WriterPadsSafeTensorsDataTo8Bytes()
    {
        string path = CheckpointWriter.Write(Dir, CheckpointFormat.SafeTensors, SmallModel(DType.F16), Fill);
        long headerLength = BitConverter.ToInt64(File.ReadAllBytes(path), 0);
        Assert.That((8 + headerLength) % 8, Is.EqualTo(0));
    }

    [Test]
    public void TorchArchiveDataIs64ByteAligned()
    {
        string path = CheckpointWriter.Write(Dir, CheckpointFormat.PyTorchBin, SmallModel(DType.F32), Fill);
        using var file = MappedFile.Open(path);
        var entries = ZipDirectory.Read(file);
        Assert.That(entries.Select(e => e.Name), Does.Contain("pytorch_model/data.pkl").And.Contain("pytorch_model/version"));
        foreach (var e in entries.Where(e => e.Name.Contains("/data/")))
            Assert.That(e.DataOffset % 64, Is.EqualTo(0), e.Name);
    }

    [Test]
    public void ForcedZip64ArchiveReadsBack()
    {
        var specs = SmallModel(DType.F16);
        string path = Path.Combine(Dir, "pytorch_model.bin");
        using (var stream = File.Create(path))
            PyTorchBinWriter.Write(stream, specs, new TensorStreamer(specs, Fill, null), forceZip64: true);
        using var source = CheckpointLoader.Open(path);
        AssertSameTensors(source, specs);
    }

    [Test]
    public void FailedWriteLeavesNoFiles([Values] CheckpointFormat format)
    {
        var specs = SmallModel(DType.F32);
        var boom = new InvalidOperationException("fill failed");
        var thrown = Assert.Throws<InvalidOperationException>(() => CheckpointWriter.Write(Dir, format, specs,
            (t, s) => { if (t.Name.Contains("c_attn")) throw boom; Fill(t, s); }, shardBytes: 64));
        Assert.That(thrown, Is.SameAs(boom));
        Assert.That(Directory.GetFileSystemEntries(Dir), Is.Empty);
    }

    [Test]
    public void DuplicateNamesAreRefused()
    {
        List<TensorSpec> specs = [new("a", DType.F32, [1]), new("a", DType.F32, [2])];
        var e = Assert.Throws<ArgumentException>(() => CheckpointWriter.Write(Dir, CheckpointFormat.SafeTensors, specs, Fill));
        Assert.That(e!.Message, Does.Contain("'a' appears twice"));
    }

    [Test]
    public void Crc32MatchesTheStandardCheckValue()
    {
        Assert.That(Crc32.Append(0, "123456789"u8), Is.EqualTo(0xCBF43926u));
        // Split updates agree with one pass, across the 8-byte fast path.
        byte[] data = Enumerable.Range(0, 1000).Select(i => (byte)(i * 7)).ToArray();
        Assert.That(Crc32.Append(Crc32.Append(0, data.AsSpan(0, 13)), data.AsSpan(13)), Is.EqualTo(Crc32.Append(0, data)));
    }

    /// <summary>Progress&lt;T&gt; posts to the thread pool; tests want the reports in order, now.</summary>
    private sealed class SyncProgress(List<long> reports) : IProgress<long>
    {
        public void Report(long value) => reports.Add(value);
    }
}
