using System.Buffers.Binary;
using GptJx.Checkpoints;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Tests.Checkpoints;

/// <summary>
/// Seeded mutations of valid pytorch_model.bin archives (one torch wrote, one with ZIP64 records):
/// every numeric field the zip reader trusts set to boundary values, random combinations of them,
/// random byte flips and truncations. Each case must load (and then every tensor byte must be
/// readable) or end in a <see cref="CheckpointException"/> naming the file; any other exception
/// fails the test, and a read outside the mapping would crash the test process.
/// </summary>
public class ZipFuzzTests : CheckpointTestBase
{
    private const int RandomCases = 600;

    [Test]
    public void TorchWrittenArchive() => Fuzz(File.ReadAllBytes(Path.Combine(FixtureDir, "state_dict.bin")), seed: 1);

    [Test]
    public void Zip64Archive()
    {
        var specs = SmallModel(DType.F16);
        var stream = new MemoryStream();
        PyTorchBinWriter.Write(stream, specs, new TensorStreamer(specs, Fill, null), forceZip64: true);
        var zip = stream.ToArray();
        Assert.That(Fields(zip).Select(f => f.What), Does.Contain("zip64.directoryOffset").And.Contain("entry0.zip64[2]"), "the seed has ZIP64 records");
        Fuzz(zip, seed: 2);
    }

    private void Fuzz(byte[] valid, int seed)
    {
        var fields = Fields(valid);
        var random = new Random(seed);
        var cases = new List<(string Name, byte[] Bytes)>();

        // Every field at every boundary value.
        foreach (var field in fields)
            foreach (ulong value in Boundaries(field.Width, valid.Length))
                cases.Add(($"{field.What} = {value}", With(valid, (field, value))));

        // Random combinations of fields, values and flipped bytes.
        for (int i = 0; i < RandomCases; i++)
        {
            var bytes = (byte[])valid.Clone();
            var what = new List<string>();
            for (int n = random.Next(1, 4); n > 0; n--)
            {
                var field = fields[random.Next(fields.Count)];
                var choices = Boundaries(field.Width, valid.Length);
                ulong value = random.Next(4) == 0 ? (ulong)random.NextInt64() >> (64 - 8 * field.Width) : choices[random.Next(choices.Length)];
                Write(bytes, field, value);
                what.Add($"{field.What} = {value}");
            }
            for (int n = random.Next(0, 4); n > 0; n--)
            {
                int at = random.Next(bytes.Length);
                bytes[at] = (byte)random.Next(256);
                what.Add($"byte {at} = {bytes[at]}");
            }
            cases.Add((string.Join(", ", what), bytes));
        }

        // Truncations, with and without a flipped byte.
        for (int i = 0; i < 100; i++)
        {
            var bytes = valid[..random.Next(1, valid.Length)];
            if (i % 2 == 1) bytes[random.Next(bytes.Length)] ^= (byte)random.Next(1, 256);
            cases.Add(($"truncated to {bytes.Length} bytes", bytes));
        }

        string path = Path.Combine(Dir, "pytorch_model.bin");
        var failures = new List<string>();
        int refused = 0;
        foreach (var (name, bytes) in cases)
        {
            File.WriteAllBytes(path, bytes);
            try
            {
                using var source = PyTorchBinReader.Open(path);
                long sum = 0;
                foreach (var tensor in source.Tensors)
                    foreach (byte b in source.Open(tensor).Bytes) sum += b;   // every byte the reader promised
                GC.KeepAlive(sum);
            }
            catch (CheckpointException e)
            {
                refused++;
                if (e.FilePath != path || !e.Message.StartsWith(path + ": ", StringComparison.Ordinal))
                    failures.Add($"{name}: the error does not name the file: {e.Message}");
            }
            catch (Exception e)
            {
                failures.Add($"{name}: {e.GetType().Name}: {e.Message}");
            }
        }

        Assert.That(failures, Is.Empty, $"{failures.Count} of {cases.Count} cases");
        Assert.That(refused, Is.GreaterThan(cases.Count / 2), "most mutations are refused (the fuzz reaches the checks)");
    }

    /// <summary>Values at the edges of a field's width and of the file's length.</summary>
    private static ulong[] Boundaries(int width, long fileLength)
    {
        ulong max = width == 8 ? ulong.MaxValue : (1UL << (8 * width)) - 1;
        ulong[] values =
        [
            0, 1, 2, 30, 46, max, max - 1, max - 45, max / 2, max / 2 + 1,
            (ulong)fileLength - 1, (ulong)fileLength, (ulong)fileLength + 1,
            (ulong)long.MaxValue, (ulong)long.MaxValue - 10, (ulong)long.MaxValue - (ulong)fileLength, 0x1_0000_0000, 0xFFFF_FFFF,
        ];
        return values.Select(v => v & max).Distinct().ToArray();
    }

    private static byte[] With(byte[] valid, params (Field Field, ulong Value)[] changes)
    {
        var bytes = (byte[])valid.Clone();
        foreach (var (field, value) in changes) Write(bytes, field, value);
        return bytes;
    }

    private static void Write(byte[] bytes, Field field, ulong value)
    {
        for (int i = 0; i < field.Width; i++) bytes[field.At + i] = (byte)(value >> (8 * i));
    }

    private sealed record Field(string What, int At, int Width);

    /// <summary>Every offset, size, count and length field of a valid archive's records, found by walking them.</summary>
    private static List<Field> Fields(byte[] zip)
    {
        var fields = new List<Field>();
        uint U32(int at) => BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(at));
        ushort U16(int at) => BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(at));
        long I64(int at) => BinaryPrimitives.ReadInt64LittleEndian(zip.AsSpan(at));

        int eocd = zip.Length - 22;
        while (U32(eocd) != 0x06054b50) eocd--;
        fields.Add(new("eocd.count", eocd + 10, 2));
        fields.Add(new("eocd.directorySize", eocd + 12, 4));
        fields.Add(new("eocd.directoryOffset", eocd + 16, 4));
        long directory = U32(eocd + 16), count = U16(eocd + 10);
        if (eocd >= 20 && U32(eocd - 20) == 0x07064b50)
        {
            fields.Add(new("locator.recordOffset", eocd - 20 + 8, 8));
            int record = (int)I64(eocd - 12);
            fields.Add(new("zip64.count", record + 32, 8));
            fields.Add(new("zip64.directorySize", record + 40, 8));
            fields.Add(new("zip64.directoryOffset", record + 48, 8));
            directory = I64(record + 48);
            count = I64(record + 32);
        }

        int p = (int)directory;
        for (int i = 0; i < count; i++)
        {
            int name = U16(p + 28), extra = U16(p + 30), comment = U16(p + 32);
            fields.Add(new($"entry{i}.compressedSize", p + 20, 4));
            fields.Add(new($"entry{i}.size", p + 24, 4));
            fields.Add(new($"entry{i}.nameLength", p + 28, 2));
            fields.Add(new($"entry{i}.extraLength", p + 30, 2));
            fields.Add(new($"entry{i}.localHeaderOffset", p + 42, 4));
            if (extra >= 4 && U16(p + 46 + name) == 0x0001)
            {
                int values = U16(p + 46 + name + 2) / 8;
                fields.Add(new($"entry{i}.zip64.length", p + 46 + name + 2, 2));
                for (int v = 0; v < values; v++) fields.Add(new($"entry{i}.zip64[{v}]", p + 46 + name + 4 + 8 * v, 8));
            }
            long local = U32(p + 42);
            if (local == 0xFFFFFFFF) local = I64(p + 46 + name + 4 + 16);
            fields.Add(new($"local{i}.nameLength", (int)local + 26, 2));
            fields.Add(new($"local{i}.extraLength", (int)local + 28, 2));
            p += 46 + name + extra + comment;
        }
        return fields;
    }
}
