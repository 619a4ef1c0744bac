using System.IO.Compression;
using System.Text.Json;
using GptJx.Checkpoints;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Tests.Checkpoints;

/// <summary>pytorch_model.bin: bytes real torch wrote, shared storages, and every refusal.</summary>
public class PyTorchBinTests : CheckpointTestBase
{
    private static CheckpointException Fails(string path) =>
        Assert.Throws<CheckpointException>(() => CheckpointLoader.Open(path).Dispose())!;

    [Test]
    public unsafe void ReadsWhatRealTorchWrote()
    {
        string bin = Path.Combine(FixtureDir, "state_dict.bin");
        using var expected = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(FixtureDir, "expected.json")));
        using var source = CheckpointLoader.Open(bin);
        Assert.That(source, Is.TypeOf<PyTorchBinReader>());

        var names = expected.RootElement.EnumerateObject().Select(p => p.Name).ToList();
        Assert.That(source.Tensors.Select(t => t.Name), Is.EqualTo(names));
        foreach (var property in expected.RootElement.EnumerateObject())
        {
            Assert.That(source.TryGetTensor(property.Name, out var info), Is.True);
            Assert.That(info.DType.ToString(), Is.EqualTo(property.Value.GetProperty("dtype").GetString()), property.Name);
            Assert.That(info.Shape, Is.EqualTo(property.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64())), property.Name);
            Assert.That(Convert.ToHexStringLower(source.Open(info).Bytes), Is.EqualTo(property.Value.GetProperty("hex").GetString()), property.Name);
        }

        // Tied weights share one storage; the view starts 4 halves into its base.
        TensorData Get(string name) => source.TryGetTensor(name, out var i) ? source.Open(i) : throw new KeyNotFoundException(name);
        Assert.That((nint)Get("lm_head.weight").Pointer, Is.EqualTo((nint)Get("wte.weight").Pointer));
        Assert.That((nint)Get("base.view").Pointer, Is.EqualTo((nint)Get("base.all").Pointer + 8));
    }

    [Test]
    public void RealTorchNonContiguousTensorIsRefused()
    {
        string bin = Path.Combine(FixtureDir, "noncontiguous.bin");
        var e = Fails(bin);
        Assert.That(e.Message, Does.Contain("noncontiguous.bin").And.Contain("'transposed'")
            .And.Contain("not contiguous (size [4, 3], stride [1, 4])"));
    }

    [Test]
    public void RealTorchInt64TensorIsRecordedAsUnsupported()
    {
        using var source = PyTorchBinReader.Open(Path.Combine(FixtureDir, "int64.bin"));
        Assert.That(source.UnsupportedTensors["position_ids"], Does.StartWith("unsupported dtype: storage type 'torch.LongStorage'"));
        Assert.That(source.TryGetTensor("position_ids", out _), Is.False);
    }

    [Test]
    public unsafe void SharedStorageWithOffsets()
    {
        var storage = Enumerable.Range(0, 40).Select(i => (byte)i).ToArray(); // 10 floats
        byte[] pickle = TorchPickleWriter.Write(
        [
            new PickledTensor("whole", DType.F32, "0", 10, 0, [10], [1]),
            new PickledTensor("matrix", DType.F32, "0", 10, 2, [2, 3], [3, 1]),
            new PickledTensor("row", DType.F32, "0", 10, 7, [1, 3], [99, 1]), // size-1 dims may have any stride
        ]);
        string path = WriteTorchZip("shared.bin", pickle, new Dictionary<string, byte[]> { ["0"] = storage });
        using var source = CheckpointLoader.Open(path);
        Assert.That(source.TryGetTensor("matrix", out var matrix));
        Assert.That(source.Open(matrix).Bytes.ToArray(), Is.EqualTo(storage[8..32]));
        Assert.That(source.TryGetTensor("row", out var row));
        Assert.That(source.Open(row).Bytes.ToArray(), Is.EqualTo(storage[28..40]));
        Assert.That(source.TryGetTensor("whole", out var whole));
        Assert.That((nint)source.Open(matrix).Pointer, Is.EqualTo((nint)source.Open(whole).Pointer + 8));
    }

    [Test]
    public void ViewBeyondItsStorage()
    {
        byte[] pickle = TorchPickleWriter.Write([new PickledTensor("tail", DType.F16, "0", 10, 8, [3], [1])]);
        string path = WriteTorchZip("beyond.bin", pickle, new Dictionary<string, byte[]> { ["0"] = new byte[20] });
        Assert.That(Fails(path).Message, Does.Contain("beyond.bin").And.Contain("'tail'").And.Contain("elements [8, 11) lie outside its storage of 10"));
    }

    [Test]
    public void SizeThatOverflows()
    {
        byte[] pickle = TorchPickleWriter.Write([new PickledTensor("huge", DType.F32, "0", 1, 0, [1L << 40, 1L << 40], [1L << 40, 1])]);
        string path = WriteTorchZip("huge.bin", pickle, new Dictionary<string, byte[]> { ["0"] = new byte[4] });
        Assert.That(Fails(path).Message, Does.Contain("huge.bin").And.Contain("'huge'").And.Contain("too large"));
    }

    [Test]
    public void StorageMemberShorterThanDeclared()
    {
        byte[] pickle = TorchPickleWriter.Write([PickledTensor.Contiguous("w", DType.F32, "0", [4])]);
        string path = WriteTorchZip("short.bin", pickle, new Dictionary<string, byte[]> { ["0"] = new byte[12] });
        Assert.That(Fails(path).Message, Does.Contain("short.bin").And.Contain("'w'").And.Contain("holds 12 bytes but 4 fp32 elements need 16"));
    }

    [Test]
    public void StorageMemberMissing()
    {
        byte[] pickle = TorchPickleWriter.Write([PickledTensor.Contiguous("w", DType.F32, "7", [4])]);
        string path = WriteTorchZip("missing.bin", pickle, new Dictionary<string, byte[]>());
        Assert.That(Fails(path).Message, Does.Contain("missing.bin").And.Contain("'w'").And.Contain("storage 'archive/data/7' is missing"));
    }

    [Test]
    public void NonContiguousStrides()
    {
        byte[] pickle = TorchPickleWriter.Write([new PickledTensor("t", DType.BF16, "0", 6, 0, [2, 3], [1, 2])]);
        string path = WriteTorchZip("strided.bin", pickle, new Dictionary<string, byte[]> { ["0"] = new byte[12] });
        Assert.That(Fails(path).Message, Does.Contain("strided.bin").And.Contain("'t'").And.Contain("not contiguous (size [2, 3], stride [1, 2])"));
    }

    [TestCase("os\nsystem\n", "os.system")]
    [TestCase("posix\nsystem\n", "posix.system")]
    [TestCase("builtins\neval\n", "builtins.eval")]
    [TestCase("__builtin__\nexec\n", "__builtin__.exec")]
    [TestCase("subprocess\nPopen\n", "subprocess.Popen")]
    [TestCase("torch\nload\n", "torch.load")]
    public void ForbiddenGlobalIsRefusedAndNothingRuns(string global, string fullName)
    {
        string marker = Path.Combine(Dir, "pwned");
        // GLOBAL <global>; MARK BINUNICODE "touch <marker>" TUPLE; REDUCE; STOP
        byte[] command = Ascii($"touch {marker}");
        byte[] pickle = Concat([0x80, 2, (byte)'c'], Ascii(global), [(byte)'(', (byte)'X'],
            BitConverter.GetBytes(command.Length), command, Ascii("tR."));
        string path = WriteTorchZip("evil.bin", pickle, new Dictionary<string, byte[]>());

        var e = Fails(path);
        Assert.That(e.Message, Does.Contain("evil.bin").And.Contain($"pickle global '{fullName}' is not allowed").And.Contain("refusing to load"));
        Assert.That(File.Exists(marker), Is.False);
    }

    [Test]
    public void ForbiddenStackGlobalIsRefused()
    {
        // Protocol 4 form: SHORT_BINUNICODE "builtins", SHORT_BINUNICODE "exec", STACK_GLOBAL.
        byte[] pickle = Concat([0x80, 4, 0x8c, 8], Ascii("builtins"), [0x8c, 4], Ascii("exec"), [0x93], Ascii("."));
        string path = WriteTorchZip("evil4.bin", pickle, new Dictionary<string, byte[]>());
        Assert.That(Fails(path).Message, Does.Contain("evil4.bin").And.Contain("pickle global 'builtins.exec' is not allowed"));
    }

    [Test]
    public void AllowedGlobalsCannotBeMisused()
    {
        // A storage type is a tag, never a callable.
        byte[] pickle = Concat([0x80, 2, (byte)'c'], Ascii("torch\nFloatStorage\n"), Ascii(")R."));
        string path = WriteTorchZip("call.bin", pickle, new Dictionary<string, byte[]>());
        Assert.That(Fails(path).Message, Does.Contain("call.bin").And.Contain("pickle global 'torch.FloatStorage' may not be called"));
    }

    [TestCase(new byte[] { 0x80, 2, 0xff }, "unknown (0xff)")]
    [TestCase(new byte[] { 0x80, 2, (byte)'(', (byte)'i', (byte)'o', (byte)'s', 10, (byte)'s', 10 }, "INST (0x69)")]
    [TestCase(new byte[] { 0x80, 2, (byte)'}', (byte)'N', 0x81 }, "NEWOBJ (0x81)")]
    public void UnknownOrForbiddenOpcode(byte[] pickle, string opcode)
    {
        string path = WriteTorchZip("opcode.bin", pickle, new Dictionary<string, byte[]>());
        Assert.That(Fails(path).Message, Does.Contain("opcode.bin").And.Contain($"pickle opcode {opcode} is not allowed"));
    }

    [Test]
    public void TruncatedPickle()
    {
        byte[] pickle = TorchPickleWriter.Write([PickledTensor.Contiguous("w", DType.F32, "0", [1])]);
        string path = WriteTorchZip("cut.bin", pickle[..^5], new Dictionary<string, byte[]> { ["0"] = new byte[4] });
        Assert.That(Fails(path).Message, Does.Contain("cut.bin").And.Contain("data.pkl"));
    }

    [Test]
    public void StateDictValueThatIsNotATensor()
    {
        // {'w': 3}
        byte[] pickle = Concat([0x80, 2, (byte)'}', (byte)'X', 1, 0, 0, 0, (byte)'w', (byte)'K', 3, (byte)'s', (byte)'.']);
        string path = WriteTorchZip("int.bin", pickle, new Dictionary<string, byte[]>());
        Assert.That(Fails(path).Message, Does.Contain("int.bin").And.Contain("'w'").And.Contain("integer 3, not a tensor"));
    }

    [Test]
    public void CompressedEntry()
    {
        byte[] pickle = TorchPickleWriter.Write([PickledTensor.Contiguous("transformer.wte.weight", DType.F16, "0", [32])]);
        string path = Path.Combine(Dir, "deflated.bin");
        using (var archive = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            using (var s = archive.CreateEntry("archive/data.pkl", CompressionLevel.NoCompression).Open()) s.Write(pickle);
            using (var s = archive.CreateEntry("archive/data/0", CompressionLevel.Optimal).Open()) s.Write(new byte[64]);
        }
        var e = Fails(path);
        Assert.That(e.Message, Does.Contain("deflated.bin").And.Contain("'transformer.wte.weight'")
            .And.Contain("zip member 'archive/data/0' is compressed (method 8)"));
    }

    [Test]
    public void TruncatedZip()
    {
        string path = CheckpointWriter.Write(Dir, CheckpointFormat.PyTorchBin, SmallModel(DType.F32), Fill);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        Assert.That(Fails(path).Message, Does.Contain("pytorch_model.bin").And.Contain("no zip end-of-central-directory record found (truncated file"));
    }

    [Test]
    public void CentralDirectoryPointingPastTheEnd()
    {
        string path = CheckpointWriter.Write(Dir, CheckpointFormat.PyTorchBin, SmallModel(DType.F32), Fill);
        var bytes = File.ReadAllBytes(path);
        BitConverter.GetBytes(uint.MaxValue - 1).CopyTo(bytes, bytes.Length - 6); // central directory offset
        File.WriteAllBytes(path, bytes);
        Assert.That(Fails(path).Message, Does.Contain("pytorch_model.bin").And.Contain("lies outside the file"));
    }

    [Test]
    public void LegacyTorchFormat()
    {
        string path = Path.Combine(Dir, "pytorch_model.bin");
        File.WriteAllBytes(path, [0x80, 2, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
        Assert.That(Fails(Dir).Message, Does.Contain("pytorch_model.bin").And.Contain("legacy (pre-1.6) torch.save format"));
    }

    [Test]
    public void NotAZipAtAll()
    {
        string path = Path.Combine(Dir, "pytorch_model.bin");
        File.WriteAllText(path, "hello, world");
        Assert.That(Fails(path).Message, Does.Contain("pytorch_model.bin").And.Contain("not a zip archive"));
    }

    [Test]
    public void PickleWriterAndReaderAgree()
    {
        List<PickledTensor> tensors =
        [
            new("big", DType.BF16, "0", 5_000_000_000, 3_000_000_000, [2, 3, 4, 5], [60, 20, 5, 1]),
            new("mid", DType.F16, "1", 70_000, 300, [], []),
            new("ünïcode.name", DType.F32, "12", 1, 0, [1], [1]),
        ];
        var read = TorchUnpickler.ReadStateDict("test.bin", TorchPickleWriter.Write(tensors));
        Assert.That(read.Select(r => r.Name), Is.EqualTo(tensors.Select(t => t.Name)));
        for (int i = 0; i < tensors.Count; i++)
        {
            var (t, r) = (tensors[i], read[i].Tensor);
            Assert.That(r.Storage.DType, Is.EqualTo(t.DType));
            Assert.That(r.Storage.Key, Is.EqualTo(t.StorageKey));
            Assert.That(r.Storage.ElementCount, Is.EqualTo(t.StorageElements));
            Assert.That(r.StorageOffset, Is.EqualTo(t.StorageOffset));
            Assert.That(r.Shape, Is.EqualTo(t.Shape));
            Assert.That(r.Stride, Is.EqualTo(t.Stride));
        }
    }
}
