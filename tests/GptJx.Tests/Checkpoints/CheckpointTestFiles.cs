using System.Buffers.Binary;
using System.Text;
using GptJx.Checkpoints;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Tests.Checkpoints;

/// <summary>Common test plumbing: a scratch folder per test, deterministic tensor bytes, crafted files.</summary>
public abstract class CheckpointTestBase
{
    protected string Dir { get; private set; } = "";

    [SetUp]
    public void CreateScratchFolder()
    {
        Dir = Path.Combine(Path.GetTempPath(), "gptjx-checkpoint-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Dir);
    }

    [TearDown]
    public void DeleteScratchFolder()
    {
        try { Directory.Delete(Dir, recursive: true); }
        catch (IOException) { }
    }

    /// <summary>A small model-shaped tensor list; lm_head is absent (tied to wte).</summary>
    protected static List<TensorSpec> SmallModel(DType dtype) =>
    [
        new("transformer.wte.weight", dtype, [5, 4]),
        new("transformer.h.0.ln_1.weight", dtype, [4]),
        new("transformer.h.0.attn.c_attn.weight", dtype, [4, 12]),
        new("transformer.relative_pe.slopes", dtype, [2, 1]),
        new("scalar", dtype, []),
        new("empty", dtype, [0, 3]),
    ];

    /// <summary>Bytes that depend on the tensor's name, so a mix-up between tensors shows.</summary>
    protected static void Fill(TensorSpec tensor, Span<byte> bytes)
    {
        int seed = tensor.Name.Aggregate(17, (h, c) => h * 31 + c);
        new Random(seed).NextBytes(bytes);
    }

    protected static byte[] Expected(TensorSpec tensor)
    {
        var bytes = new byte[tensor.ByteLength];
        Fill(tensor, bytes);
        return bytes;
    }

    protected static void AssertSameTensors(ITensorSource source, IReadOnlyList<TensorSpec> specs)
    {
        Assert.That(source.Tensors.Select(t => t.Name), Is.EqualTo(specs.Select(s => s.Name)));
        foreach (var spec in specs)
        {
            Assert.That(source.TryGetTensor(spec.Name, out var info), Is.True, spec.Name);
            Assert.That(info.DType, Is.EqualTo(spec.DType), spec.Name);
            Assert.That(info.Shape, Is.EqualTo(spec.Shape), spec.Name);
            Assert.That(File.Exists(info.File), Is.True, spec.Name);
            Assert.That(source.Open(info).Bytes.ToArray(), Is.EqualTo(Expected(spec)), spec.Name);
        }
    }

    /// <summary>A safetensors file from a literal header and data section.</summary>
    protected string WriteSafeTensors(string name, string header, byte[] data, long? headerLength = null)
    {
        string path = Path.Combine(Dir, name);
        byte[] json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)(headerLength ?? json.Length));
        json.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + json.Length);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>A torch.save-style archive from a pickle and storages (key -> bytes).</summary>
    protected string WriteTorchZip(string name, byte[] pickle, IReadOnlyDictionary<string, byte[]> storages, string folder = "archive")
    {
        string path = Path.Combine(Dir, name);
        using var stream = File.Create(path);
        var zip = new ZipWriter(stream);
        zip.AddEntry($"{folder}/data.pkl", pickle);
        foreach (var (key, bytes) in storages) zip.AddEntry($"{folder}/data/{key}", bytes);
        zip.AddEntry($"{folder}/version", "3\n"u8);
        zip.Finish();
        return path;
    }

    protected static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    protected static byte[] Ascii(string text) => Encoding.ASCII.GetBytes(text);

    protected static string FixtureDir
    {
        get
        {
            for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir != null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "tests", "fixtures", "checkpoint-samples");
                if (Directory.Exists(candidate)) return candidate;
            }
            throw new DirectoryNotFoundException("tests/fixtures/checkpoint-samples not found above the test folder");
        }
    }
}
