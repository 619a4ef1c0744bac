using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using GptJx.Backends;
using GptJx.Cuda;
using GptJx.Cuda.Interop;
using GptJx.Model;
using GptJx.Tensors;

namespace GptJx.Cuda.Tests;

/// <summary>Tests that need no GPU: they run everywhere.</summary>
public class MemoryPlanTests
{
    [Test]
    public void KvCacheOfTheFullContextIsTheDocumentedSize()
    {
        var plan = CudaMemoryPlan.Compute(ModelConfig.GptJx3B, DType.BF16, slots: 1, context: 8192, maxRows: 512);
        Assert.That(plan.KvCacheBytes, Is.EqualTo(327_680L * 8192));  // 320 KiB per token
    }

    [Test]
    public void WeightsAreTwoBytesPerParameterPlusFp32Vectors()
    {
        var plan = CudaMemoryPlan.Compute(ModelConfig.GptJx3B, DType.F16, 1, 8192, 512);
        // 2,646,255,776 parameters; the vectors (biases, norms, slopes) are kept in fp32.
        Assert.That(plan.WeightBytes, Is.GreaterThan(2_646_255_776L * 2).And.LessThan((long)(2_646_255_776L * 2 * 1.01)));
        var untied = CudaMemoryPlan.Compute(ModelConfig.GptJx3B with { TieWordEmbeddings = false }, DType.F16, 1, 8192, 512);
        Assert.That(untied.WeightBytes - plan.WeightBytes, Is.EqualTo(50257L * 2560 * 2));
    }

    [Test]
    public void WeightsCountTheRowPaddingOfEveryLinearLayerIncludingAnUntiedHead()
    {
        // D = 12 and F = 10 are padded to 16 inputs per device row; the embedding table is not padded.
        var shape = ModelConfig.Tiny with { Layers = 1, Width = 12, FeedForwardWidth = 10, Heads = 3, VocabularySize = 7 };
        var tied = CudaMemoryPlan.Compute(shape, DType.F16, 1, 16, 4);
        long matrices = 3 * 12 * 16 + 12 * 16 + 2 * 10 * 16 + 12 * 16;  // qkv, attention out, c_fc | c_fc2, mlp.c_proj
        long vectors = 3 * 12 + 12 + 2 * 10 + 12 + 4 * 12;                // their biases and the two norms
        long expected = 7 * 12 * 2 + matrices * 2 + vectors * 4 + 2 * 12 * 4 + 3 * 4;
        Assert.That(tied.WeightBytes, Is.EqualTo(expected));
        var untied = CudaMemoryPlan.Compute(shape with { TieWordEmbeddings = false }, DType.F16, 1, 16, 4);
        Assert.That(untied.WeightBytes - tied.WeightBytes, Is.EqualTo(7L * WeightRows.LeadingDimension(12) * 2));
    }

    [Test]
    public void TotalIsTheSumOfItsParts()
    {
        var p = CudaMemoryPlan.Compute(ModelConfig.GptJx3B, DType.BF16, 4, 2048, 1024);
        Assert.That(p.TotalBytes, Is.EqualTo(p.WeightBytes + p.KvCacheBytes + p.ActivationBytes + p.WorkspaceBytes + p.StagingBytes + p.MarginBytes));
        Assert.That(p.MarginBytes, Is.GreaterThanOrEqualTo(CudaMemoryPlan.MinimumMarginBytes));
        Assert.That(p.WorkspaceBytes, Is.EqualTo(32L << 20));
        Assert.That(p.StagingBytes, Is.EqualTo(128L << 20));
    }

    [Test]
    public void KvCacheAndActivationsGrowWithBatchAndContext()
    {
        var a = CudaMemoryPlan.Compute(ModelConfig.GptJx3B, DType.BF16, 1, 1024, 256);
        var b = CudaMemoryPlan.Compute(ModelConfig.GptJx3B, DType.BF16, 8, 1024, 256);
        Assert.That(b.KvCacheBytes, Is.EqualTo(8 * a.KvCacheBytes));
        Assert.That(b.ActivationBytes, Is.GreaterThan(a.ActivationBytes));
        Assert.That(b.WeightBytes, Is.EqualTo(a.WeightBytes));
    }

    [Test]
    public void RefusalNamesTheDeviceAndTheNumbers()
    {
        var plan = CudaMemoryPlan.Compute(ModelConfig.GptJx3B, DType.BF16, 1, 8192, 512);
        var free = 4L << 30;
        var e = Assert.Throws<CudaOutOfMemoryException>(() => plan.EnsureFits(free, 40L << 30, "cuda:0 (Test GPU)"))!;
        Assert.That(e.Message, Does.StartWith("cuda:0 (Test GPU) cannot hold the model: it needs "));
        Assert.That(e.Message, Does.Contain("weights 4.9").And.Contain("KV cache 2.50 GiB for 1 x 8192 positions"));
        Assert.That(e.Message, Does.Contain("only 4.00 GiB of 40.00 GiB is free"));
        Assert.That(e.Message, Does.Contain(CudaMemoryPlan.GiB(plan.TotalBytes - free)));
        Assert.That(e.FreeBytes, Is.EqualTo(free));
        Assert.That(e.Plan, Is.SameAs(plan));
        Assert.DoesNotThrow(() => plan.EnsureFits(plan.TotalBytes, 141L << 30, "cuda:0"));
    }

    [Test]
    public void BadArgumentsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => CudaMemoryPlan.Compute(ModelConfig.GptJx3B, DType.F32, 1, 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => CudaMemoryPlan.Compute(ModelConfig.GptJx3B, DType.F16, 0, 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => CudaMemoryPlan.Compute(ModelConfig.GptJx3B, DType.F16, 1, 0, 1));
    }
}

public class NativeLibraryTests
{
    [Test]
    public void CublasSonamesAreProbedNewestFirst()
    {
        Assert.That(NativeLibraries.CublasCandidates(windows: false, null), Is.EqualTo(new[] { "libcublas.so.13", "libcublas.so.12", "libcublas.so.11" }));
        Assert.That(NativeLibraries.CublasCandidates(windows: true, null), Is.EqualTo(new[] { "cublas64_13.dll", "cublas64_12.dll", "cublas64_11.dll" }));
    }

    [Test]
    public void DriverNames()
    {
        Assert.That(NativeLibraries.DriverCandidates(windows: false, null)[0], Is.EqualTo("libcuda.so.1"));
        Assert.That(NativeLibraries.DriverCandidates(windows: true, ""), Is.EqualTo(new[] { "nvcuda.dll" }));
    }

    [Test]
    public void AnOverrideIsTheOnlyCandidate()
    {
        Assert.That(NativeLibraries.CublasCandidates(false, "/opt/cuda/lib64/libcublas.so.12.4"), Is.EqualTo(new[] { "/opt/cuda/lib64/libcublas.so.12.4" }));
        Assert.That(NativeLibraries.DriverCandidates(true, @"C:\drivers\nvcuda.dll"), Is.EqualTo(new[] { @"C:\drivers\nvcuda.dll" }));
    }

    [Test]
    public void NotFoundMessagesNameTheFilesAndTheVariable()
    {
        Assert.That(NativeLibraries.NotFoundMessage(CudaDriver.Library, ["libcuda.so.1"]),
            Is.EqualTo("CUDA driver library libcuda.so.1 not found (set GPTJX_CUDA_DRIVER_PATH to its path)"));
        Assert.That(NativeLibraries.NotFoundMessage(CuBlas.Library, NativeLibraries.CublasCandidates(false, null)),
            Is.EqualTo("cuBLAS library not found (tried libcublas.so.13, libcublas.so.12, libcublas.so.11; set GPTJX_CUBLAS_PATH to its path)"));
    }

    [Test]
    public void ProbeNeverThrowsAndGivesOneLine()
    {
        var probe = CudaDevice.Probe();
        TestContext.Out.WriteLine($"Probe: {probe.Status}: {probe.Reason}");
        Assert.That(probe.Reason, Is.Not.Empty.And.Not.Contain("\n"));
        if (probe.IsAvailable) Assert.That(probe.Reason, Does.StartWith("cuda:0 ").And.Contain("compute capability"));
        else Assert.That(probe.IsAbsent || Environment.GetEnvironmentVariable(TestDevice.RequireVariable) != "1", Is.True,
            $"a GPU is required here, but the probe says {probe.Status}: {probe.Reason}");
    }
}

public class ErrorTests
{
    private static int Fake(int status) => status;

    [Test]
    public void DriverStatusBecomesAnExceptionNamingTheCall()
    {
        var e = Assert.Throws<CudaException>(() => CudaCheck.Driver(Fake(2)))!;
        Assert.That(e.Call, Is.EqualTo("Fake"));
        Assert.That(e.Code, Is.EqualTo(2));
        Assert.That(e.ErrorName, Is.EqualTo("CUDA_ERROR_OUT_OF_MEMORY"));
        Assert.That(e.Message, Does.StartWith("Fake failed: CUDA_ERROR_OUT_OF_MEMORY (2): out of memory"));
        Assert.DoesNotThrow(() => CudaCheck.Driver(Fake(0)));
    }

    [Test]
    public void VersionedExportsAreNamed()
    {
        Assert.That(CudaCheck.CallName("CudaDriver.cuMemAlloc(out var p, (nuint)bytes)"), Is.EqualTo("cuMemAlloc_v2"));
        Assert.That(CudaCheck.CallName("CudaDriver.cuStreamBeginCapture(_stream.Handle, 1)"), Is.EqualTo("cuStreamBeginCapture_v2"));
        Assert.That(CudaCheck.CallName("CuBlas.cublasSetWorkspace(h, p, n)"), Is.EqualTo("cublasSetWorkspace_v2"));
        Assert.That(CudaCheck.CallName("CudaDriver.cuLaunchKernel(f, 1, 1)"), Is.EqualTo("cuLaunchKernel"));
    }

    [Test]
    public void BlasStatusBecomesAnException()
    {
        var e = Assert.Throws<CudaException>(() => CudaCheck.Blas(Fake(15)))!;
        Assert.That(e.Library, Is.EqualTo("cuBLAS"));
        Assert.That(e.Message, Is.EqualTo("Fake failed: CUBLAS_STATUS_NOT_SUPPORTED (15): the functionality requested is not supported"));
    }

    [Test]
    public void UnknownCodesStillFormat()
    {
        var e = CudaCheck.DriverError("cuModuleLoadDataEx", 12345, "while JIT-compiling PTX module 'x': ptxas fatal");
        Assert.That(e.Message, Does.StartWith("cuModuleLoadDataEx failed: CUDA_ERROR_12345 (12345)"));
        Assert.That(e.Message, Does.EndWith("ptxas fatal"));
    }
}

public class PtxTests
{
    private static readonly string[] Modules =
        ["attention_decode", "attention_prefill", "bias", "convert", "embed", "gather_rows", "gemv", "kv_append", "layernorm", "probe", "sampling", "scale", "swiglu"];

    [Test]
    public void EveryKernelFileIsEmbedded() => Assert.That(PtxResources.Modules, Is.EqualTo(Modules));

    [Test]
    public void PtxTargetsCompute80()
    {
        foreach (var m in Modules)
        {
            var ptx = PtxResources.Read(m);
            Assert.That(ptx, Does.Contain(".version 7.8").And.Contain(".target sm_80"), m);
            Assert.That(ptx, Does.Not.Contain(".file"), $"{m}: no source paths in the PTX");
        }
    }

    public static IEnumerable<string> ExpectedEntries()
    {
        foreach (var t in new[] { "f16", "bf16" })
        {
            yield return $"embed_gather_{t}";
            yield return $"kv_append_{t}";
            foreach (var hd in CudaBackend.SupportedHeadDims)
            {
                yield return $"attention_prefill_{t}_hd{hd}";
                yield return $"attention_decode_{t}_hd{hd}";
                yield return $"attention_combine_{t}_hd{hd}";
            }
        }
        foreach (var t in new[] { "f32", "f16", "bf16" })
        {
            yield return $"layer_norm_{t}";
            yield return $"rms_norm_{t}";
            yield return $"bias_rows_{t}";
            yield return $"swiglu_{t}";
            yield return $"scale_{t}";
            foreach (var d in new[] { "f32", "f16", "bf16" }) yield return $"convert_{t}_{d}";
            foreach (var d in new[] { "f16", "bf16" }) yield return $"convert_t_{t}_{d}";
        }
        foreach (var (w, o) in new[] { ("f16", "f32"), ("f16", "f16"), ("bf16", "f32"), ("bf16", "bf16") }) yield return $"gemv_{w}_{o}";
        yield return "probe_read";
        yield return "probe_triad";
        yield return "gather_rows_b32";
        yield return "gather_rows_b16";
        yield return "argmax_f32";
        yield return "sample_f32";
    }

    [Test]
    public void ExpectedEntryPointsExist()
    {
        var entries = Modules.SelectMany(m => PtxResources.EntryPoints(PtxResources.Read(m))).ToHashSet();
        Assert.That(ExpectedEntries().Where(e => !entries.Contains(e)), Is.Empty);
    }

    /// <summary>
    /// Parameter kinds of every kernel family as its launcher passes them (KernelArgs: Ptr/Long = u64,
    /// Int = u32, Float = f32), in the order of the launcher's KernelArgs chain. The PTX .entry parameter
    /// lists are the truth; every instance of a family (each element type, each head width) is checked,
    /// and an entry point no family describes fails, so a new kernel cannot go unchecked.
    /// </summary>
    private static readonly (string Pattern, string Kinds)[] LaunchSignatures =
    [
        // CudaBackend.Linear: w, ldw, n, k, x, ldx, m, bias, accumulate, y, ldy
        (@"^gemv_(f16|bf16)_(f32|f16|bf16)$", "u64 u32 u32 u32 u64 u32 u32 u64 u32 u64 u32"),
        // WeightStreamer.Copy, transposed: src, rows, cols, dst, dst_ld, dst_row0, dst_col0 (long)
        (@"^convert_t_(f32|f16|bf16)_(f16|bf16)$", "u64 u64 u32 u64 u64 u64 u64"),
        // WeightStreamer.Copy: src, rows, cols, dst, dst_ld, dst_row0, dst_col0 (int)
        (@"^convert_(f32|f16|bf16)_(f32|f16|bf16)$", "u64 u64 u32 u64 u64 u64 u32"),
        // CudaBackend.Attention, decode: qkv, keys, values, descriptors, slopes, heads, max_pos, max_splits, target_splits, scale, partials
        (@"^attention_decode_(f16|bf16)_hd\d+$", "u64 u64 u64 u64 u64 u32 u32 u32 u32 f32 u64"),
        // partials, descriptors, heads, max_splits, target_splits, out
        (@"^attention_combine_(f16|bf16)_hd\d+$", "u64 u64 u32 u32 u32 u64"),
        // qkv, keys, values, descriptors, slopes, heads, max_pos, scale, out
        (@"^attention_prefill_(f16|bf16)_hd\d+$", "u64 u64 u64 u64 u64 u32 u32 f32 u64"),
        (@"^kv_append_(f16|bf16)$", "u64 u64 u32 u32 u32 u64 u64"),
        (@"^sample_f32$", "u64 u32 u64 u64"),
        (@"^argmax_f32$", "u64 u32 u64"),
        // CudaRooflineProbe.MeasureBandwidth: a, n16, sink / a, b, c, s, n4
        (@"^probe_read$", "u64 u64 u64"),
        (@"^probe_triad$", "u64 u64 u64 f32 u64"),
        (@"^embed_gather_(f16|bf16)$", "u64 u64 u32 u32 f32 u64"),
        (@"^layer_norm_(f32|f16|bf16)$", "u64 u64 u64 u32 f32 u64"),
        (@"^rms_norm_(f32|f16|bf16)$", "u64 u64 u32 f32 u64"),
        (@"^bias_rows_(f32|f16|bf16)$", "u64 u64 u32 u32"),
        (@"^scale_(f32|f16|bf16)$", "u64 u64 f32"),
        (@"^swiglu_(f32|f16|bf16)$", "u64 u32 u64"),
        (@"^gather_rows_b(16|32)$", "u64 u64 u32 u64"),
    ];

    private static string ParameterKinds(string ptx, string entry)
    {
        var at = ptx.IndexOf($".entry {entry}(", StringComparison.Ordinal);
        Assert.That(at, Is.GreaterThanOrEqualTo(0), entry);
        var list = ptx[at..ptx.IndexOf(')', at)];
        return string.Join(" ", System.Text.RegularExpressions.Regex.Matches(list, @"\.param\s+\.(\w+)").Select(m => m.Groups[1].Value));
    }

    [Test]
    public void LaunchArgumentsMatchThePtxSignatureOfEveryEntry()
    {
        var ptx = string.Concat(Modules.Select(PtxResources.Read));
        var entries = Modules.SelectMany(m => PtxResources.EntryPoints(PtxResources.Read(m))).ToArray();
        Assert.That(entries, Has.Length.GreaterThan(60));
        foreach (var entry in entries)
        {
            var family = LaunchSignatures.FirstOrDefault(f => System.Text.RegularExpressions.Regex.IsMatch(entry, f.Pattern));
            Assert.That(family.Pattern, Is.Not.Null, $"no launch signature describes the entry point {entry}");
            Assert.That(ParameterKinds(ptx, entry), Is.EqualTo(family.Kinds), entry);
        }
        foreach (var (pattern, _) in LaunchSignatures)
            Assert.That(entries.Any(e => System.Text.RegularExpressions.Regex.IsMatch(e, pattern)), $"no entry point matches {pattern}");
    }

    [Test]
    public void EntryPointParsing()
    {
        const string ptx = ".version 7.8\n.visible .entry foo_f16(\n.param .u64 a\n)\n{\n}\n.entry bar(\n)";
        Assert.That(PtxResources.EntryPoints(ptx), Is.EqualTo(new[] { "foo_f16", "bar" }));
    }

    [Test]
    public void PrefillSharedMemoryFitsAnSm80Block()
    {
        Assert.That(CudaBackend.PrefillSharedBytes(80), Is.EqualTo(81920));
        foreach (var hd in CudaBackend.SupportedHeadDims) Assert.That(CudaBackend.PrefillSharedBytes(hd), Is.LessThanOrEqualTo(163 * 1024));
    }
}

public class LayoutTests
{
    [Test]
    public void SequenceDescriptorMatchesTheKernelStruct()
    {
        Assert.That(Marshal.SizeOf<SequenceDescriptor>(), Is.EqualTo(20));
        Assert.That(Marshal.OffsetOf<SequenceDescriptor>(nameof(SequenceDescriptor.Slot)), Is.EqualTo((nint)0));
        Assert.That(Marshal.OffsetOf<SequenceDescriptor>(nameof(SequenceDescriptor.Start)), Is.EqualTo((nint)4));
        Assert.That(Marshal.OffsetOf<SequenceDescriptor>(nameof(SequenceDescriptor.FirstRow)), Is.EqualTo((nint)8));
        Assert.That(Marshal.OffsetOf<SequenceDescriptor>(nameof(SequenceDescriptor.Length)), Is.EqualTo((nint)12));
        Assert.That(Marshal.OffsetOf<SequenceDescriptor>(nameof(SequenceDescriptor.AlibiScale)), Is.EqualTo((nint)16));
        Assert.That(Unsafe.SizeOf<SequenceDescriptor>(), Is.EqualTo(20));
    }

    [Test]
    public void SampleParamsMatchesTheKernelStruct()
    {
        Assert.That(Marshal.SizeOf<SampleParams>(), Is.EqualTo(16));
        Assert.That(Marshal.OffsetOf<SampleParams>(nameof(SampleParams.Temperature)), Is.EqualTo((nint)0));
        Assert.That(Marshal.OffsetOf<SampleParams>(nameof(SampleParams.TopK)), Is.EqualTo((nint)4));
        Assert.That(Marshal.OffsetOf<SampleParams>(nameof(SampleParams.TopP)), Is.EqualTo((nint)8));
        Assert.That(Marshal.OffsetOf<SampleParams>(nameof(SampleParams.Uniform)), Is.EqualTo((nint)12));
    }

    [Test]
    public void KernelStructsInTheSourcesHaveTheSameFields()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "kernels", "common.cuh"))) dir = dir.Parent;
        if (dir is null) Assert.Ignore("kernel sources not found next to the test assembly");
        var common = File.ReadAllText(Path.Combine(dir!.FullName, "kernels", "common.cuh"));
        Assert.That(common, Does.Contain("int slot;").And.Contain("int start;").And.Contain("int first_row;").And.Contain("int length;").And.Contain("float alibi_scale;"));
        var sampling = File.ReadAllText(Path.Combine(dir.FullName, "kernels", "sampling.cu"));
        Assert.That(sampling, Does.Contain("float temperature;\n    int top_k;\n    float top_p;\n    float uniform;"));
    }

    [Test]
    public void DescriptorsAreEncodedFromTheBatch()
    {
        var batch = new AttentionBatch(4);
        batch.Add(slot: 2, startPosition: 100, tokens: 1);
        batch.Add(slot: 0, startPosition: 0, tokens: 7, alibiScale: 0.5f);
        var d = new SequenceDescriptor[2];
        CudaBackend.EncodeDescriptors(batch.Active, d);
        Assert.That(d[0], Is.EqualTo(new SequenceDescriptor { Slot = 2, Start = 100, FirstRow = 0, Length = 1, AlibiScale = 1f }));
        Assert.That(d[1], Is.EqualTo(new SequenceDescriptor { Slot = 0, Start = 0, FirstRow = 1, Length = 7, AlibiScale = 0.5f }));
    }

    [Test]
    public void HostRoundingMatchesTheDevice()
    {
        Assert.That(HalfConvert.Round(1f + 1f / 256, DType.BF16), Is.EqualTo(1f));           // ties to even
        Assert.That(HalfConvert.Round(1f + 3f / 256, DType.BF16), Is.EqualTo(1f + 4f / 256)); // ties to even (up)
        Assert.That(HalfConvert.Round(0.1f, DType.F16), Is.EqualTo((float)(Half)0.1f));
        var bytes = new byte[4];
        HalfConvert.FromSingle([1.5f, -2f], DType.BF16, bytes);
        Assert.That(bytes, Is.EqualTo(new byte[] { 0xC0, 0x3F, 0x00, 0xC0 }));
        var back = new float[2];
        HalfConvert.ToSingle(bytes, DType.BF16, back);
        Assert.That(back, Is.EqualTo(new[] { 1.5f, -2f }));
    }
}
