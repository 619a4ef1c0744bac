using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using GptJx.Checkpoints;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Tests.Checkpoints;

/// <summary>Checkpoints crafted to break the reader: each is refused with the file, the tensor and the offset named.</summary>
public class HostileCheckpointTests : CheckpointTestBase
{
    private static CheckpointException Fails(string path) =>
        Assert.Throws<CheckpointException>(() => CheckpointLoader.Open(path).Dispose())!;

    // ---- ZIP64 and offset arithmetic (.bin) ------------------------------------------

    /// <summary>A ZIP64 pytorch_model.bin, and where its records' fields are.</summary>
    private (string Path, byte[] Bytes, int Locator, int Record, int FirstEntry) Zip64Bin()
    {
        var specs = SmallModel(DType.F16);
        var stream = new MemoryStream();
        PyTorchBinWriter.Write(stream, specs, new TensorStreamer(specs, Fill, null), forceZip64: true);
        var bytes = stream.ToArray();
        int locator = bytes.Length - 22 - 20;
        int record = (int)BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(locator + 8));
        int firstEntry = (int)BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(record + 48));
        return (Path.Combine(Dir, "pytorch_model.bin"), bytes, locator, record, firstEntry);
    }

    private static string Written(string path, byte[] bytes, int at, ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(at), value);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Test]
    public void Zip64RecordOffsetThatOverflowsIsRefused()
    {
        var (path, bytes, locator, _, _) = Zip64Bin();
        // record + 56 overflowed to a negative number and passed the bounds check.
        var e = Fails(Written(path, bytes, locator + 8, long.MaxValue - 10));
        Assert.That(e.Message, Is.EqualTo($"{path}: ZIP64 end-of-central-directory record at offset 9223372036854775797 is missing or corrupt"));
    }

    [Test]
    public void Zip64EntryCountBeyondTheDirectoryIsRefused()
    {
        var (path, bytes, _, record, _) = Zip64Bin();
        var e = Fails(Written(path, bytes, record + 32, ulong.MaxValue));
        Assert.That(e.Message, Does.StartWith($"{path}: zip central directory of ").And.EndWith(" bytes cannot hold the 18446744073709551615 entries it claims"));
    }

    [Test]
    public void Zip64DirectoryBeyondTheFileIsRefused()
    {
        var (path, bytes, _, record, _) = Zip64Bin();
        var e = Fails(Written(path, bytes, record + 40, (ulong)long.MaxValue));
        Assert.That(e.Message, Does.Contain("zip central directory [").And.Contain(", +9223372036854775807) lies outside the file of"));
    }

    [Test]
    public void Zip64LocalHeaderOffsetBeyondTheFileIsRefused()
    {
        var (path, bytes, _, _, entry) = Zip64Bin();
        int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(entry + 28));
        string name = Encoding.UTF8.GetString(bytes, entry + 46, nameLength);
        // The ZIP64 extra holds size, compressed size, local header offset.
        var e = Fails(Written(path, bytes, entry + 46 + nameLength + 4 + 16, ulong.MaxValue));
        Assert.That(e.Message, Is.EqualTo($"{path}: zip entry '{name}' has no valid local header at offset 18446744073709551615 (truncated file?)"));
    }

    [Test]
    public void Zip64SizeThatOverflowsIsRefused()
    {
        var (path, bytes, _, _, entry) = Zip64Bin();
        int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(entry + 28));
        string name = Encoding.UTF8.GetString(bytes, entry + 46, nameLength);
        ulong huge = (ulong)long.MaxValue - 100;
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(entry + 46 + nameLength + 4), huge);
        var e = Fails(Written(path, bytes, entry + 46 + nameLength + 4 + 8, huge));
        Assert.That(e.Message, Does.StartWith($"{path}: zip entry '{name}' of {huge} bytes at offset ").And.Contain("runs beyond the end of the file"));
    }

    [Test]
    public void StorageOffsetThatOverflowsIsRefused()
    {
        byte[] pickle = TorchPickleWriter.Write([new PickledTensor("w", DType.F32, "0", 4, long.MaxValue - 1, [4], [1])]);
        string path = WriteTorchZip("offset.bin", pickle, new Dictionary<string, byte[]> { ["0"] = new byte[16] });
        Assert.That(Fails(path).Message, Is.EqualTo($"{path}: tensor 'w': size [4] or its storage is too large"));
    }

    // ---- overlapping tensors and holes (safetensors) ---------------------------------

    [Test]
    public void OverlappingTensorsAreRefused()
    {
        string header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
        string path = WriteSafeTensors("overlap.safetensors", header, new byte[12]);
        var e = Fails(path);
        Assert.That(e.Message, Is.EqualTo($"{path}: tensor 'b': data_offsets [4, 12] overlap tensor 'a', which ends at 8"));
        Assert.That(e.TensorName, Is.EqualTo("b"));
    }

    [Test]
    public void TwoTensorsOnTheSameBytesAreRefused()
    {
        string header = "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},\"alias\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}";
        string path = WriteSafeTensors("alias.safetensors", header, new byte[4]);
        Assert.That(Fails(path).Message, Does.Contain("data_offsets [0, 4] overlap tensor '"));
    }

    [Test]
    public void AHoleBetweenTensorsIsRefused()
    {
        string header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
        string path = WriteSafeTensors("hole.safetensors", header, new byte[12]);
        Assert.That(Fails(path).Message, Is.EqualTo($"{path}: tensor 'b': data_offsets [8, 12] leave bytes [4, 8) of the data section in no tensor (a hole)"));
    }

    [Test]
    public void BytesAfterTheLastTensorAreRefused()
    {
        string header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
        string path = WriteSafeTensors("tail.safetensors", header, new byte[10]);
        Assert.That(Fails(path).Message, Is.EqualTo($"{path}: tensor 'a': the data section has 6 bytes after the last tensor's end at 4 that belong to no tensor"));
    }

    [Test]
    public void TensorsOfUnsupportedTypesCountInTheTiling()
    {
        string header = "{\"ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
        using var source = CheckpointLoader.Open(WriteSafeTensors("mixed.safetensors", header, new byte[12]));
        Assert.That(source.Tensors.Single().Name, Is.EqualTo("w"));
        Assert.That(source.UnsupportedTensors.Keys, Is.EqualTo(new[] { "ids" }));
    }

    // ---- resource traps ---------------------------------------------------------------

    [Test]
    public void AMillionDimensionsAreRefusedByRank()
    {
        string shape = string.Join(",", Enumerable.Repeat("1", 1_000_000));
        string path = WriteSafeTensors("rank.safetensors", $"{{\"w\":{{\"dtype\":\"F32\",\"shape\":[{shape}],\"data_offsets\":[0,4]}}}}", new byte[4]);
        Assert.That(Fails(path).Message, Is.EqualTo($"{path}: tensor 'w': shape has 1000000 dimensions; at most 16 are supported"));

        var dims = Enumerable.Repeat(1L, 1_000_000).Append(0).ToArray();
        byte[] pickle = TorchPickleWriter.Write([new PickledTensor("w", DType.F32, "0", 0, 0, dims, dims)]);
        string bin = WriteTorchZip("rank.bin", pickle, new Dictionary<string, byte[]> { ["0"] = [] });
        Assert.That(Fails(bin).Message, Is.EqualTo($"{bin}: tensor 'w': has 1000001 dimensions; at most 16 are supported"));
    }

    [TestCase("model.safetensors")]
    [TestCase("pytorch_model.bin")]
    [TestCase("model.safetensors.index.json")]
    public void AFifoInPlaceOfTheWeightsIsRefusedWithoutBlocking(string name)
    {
        string fifo = MakeFifo(Path.Combine(Dir, name));
        var open = Task.Run(() => Assert.Throws<CheckpointException>(() => CheckpointLoader.Open(Dir).Dispose())!);
        Assert.That(open.Wait(TimeSpan.FromSeconds(60)), Is.True, "opening a FIFO blocks until a writer comes");
        Assert.That(open.Result.Message, Is.EqualTo($"{fifo}: is a FIFO (named pipe), not a regular file"));
    }

    /// <summary>A named pipe at <paramref name="path"/> (Linux; the test is skipped elsewhere).</summary>
    internal static string MakeFifo(string path)
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("named pipes are made with mkfifo on Linux");
        using var mkfifo = Process.Start("mkfifo", [path])!;
        mkfifo.WaitForExit();
        Assert.That(mkfifo.ExitCode, Is.Zero, "mkfifo");
        return path;
    }

    // ---- unclear errors ---------------------------------------------------------------

    [Test]
    public void InvalidUtf8InATensorNameIsNamedAsSuch()
    {
        string path = Path.Combine(Dir, "utf8.safetensors");
        byte[] header = [.. "{\"w"u8, 0xFF, .. "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"u8];
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)header.Length), .. header, 0, 0, 0, 0]);
        Assert.That(Fails(path).Message, Is.EqualTo($"{path}: header: a property name at the top level is not valid text (invalid UTF-8 or an unpaired surrogate escape)"));
    }

    [Test]
    public void ATensorListedTwiceInTheIndexIsNamed()
    {
        CheckpointWriter.Write(Dir, CheckpointFormat.Sharded, SmallModel(DType.F32), Fill, shardBytes: 64);
        string index = Path.Combine(Dir, "model.safetensors.index.json");
        string json = File.ReadAllText(index);
        int at = json.IndexOf('{', json.IndexOf("\"weight_map\"", StringComparison.Ordinal)) + 1;
        string shard = Path.GetFileName(Directory.GetFiles(Dir, "model-*.safetensors").Order().First());
        File.WriteAllText(index, json.Insert(at, $"\"scalar\": \"{shard}\", "));
        var e = Fails(index);
        Assert.That(e.Message, Is.EqualTo($"{index}: tensor 'scalar': listed twice in weight_map"));
    }

    [Test]
    public void DataOffsetsThatAreNotNumbersAreNamed()
    {
        string path = WriteSafeTensors("offsets.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", new byte[4]);
        Assert.That(Fails(path).Message, Is.EqualTo($"{path}: tensor 'w': header entry has no \"data_offsets\" pair of integers"));
    }
}
