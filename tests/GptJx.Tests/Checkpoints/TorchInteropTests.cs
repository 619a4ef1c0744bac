using System.Diagnostics;
using System.Text.Json;
using GptJx.Tensors;
using GptJx.TestModels;

namespace GptJx.Tests.Checkpoints;

/// <summary>
/// What the writer produces loads in Python: torch.load for pytorch_model.bin
/// (including a ZIP64 archive) and an independent parser for safetensors, via
/// tools/reference/read_checkpoint.py. Skipped where no Python with torch is
/// found (set GPTJX_PYTHON to choose the interpreter).
/// </summary>
[Category("Python")]
public class TorchInteropTests : CheckpointTestBase
{
    private static readonly Lazy<string?> Python = new(FindPython);

    [Test]
    public void PythonReadsWhatTheWriterWrote(
        [Values] CheckpointFormat format,
        [Values(DType.F32, DType.F16, DType.BF16)] DType dtype)
    {
        var specs = SmallModel(dtype);
        CheckpointWriter.Write(Dir, format, specs, Fill, shardBytes: 64);
        AssertPythonSees(Dir, specs);
    }

    [Test]
    public void TorchLoadsAZip64Archive()
    {
        var specs = SmallModel(DType.BF16);
        string path = Path.Combine(Dir, "pytorch_model.bin");
        using (var stream = File.Create(path))
            PyTorchBinWriter.Write(stream, specs, new TensorStreamer(specs, Fill, null), forceZip64: true);
        AssertPythonSees(path, specs);
    }

    private static void AssertPythonSees(string checkpoint, IReadOnlyList<TensorSpec> specs)
    {
        string python = Python.Value ?? throw new IgnoreException("no Python with torch found (set GPTJX_PYTHON)");
        var (code, output, error) = Run(python, ScriptPath(), checkpoint);
        Assert.That(code, Is.EqualTo(0), error);
        using var json = JsonDocument.Parse(output);
        Assert.That(json.RootElement.EnumerateObject().Select(p => p.Name).Order(), Is.EqualTo(specs.Select(s => s.Name).Order()));
        foreach (var spec in specs)
        {
            var t = json.RootElement.GetProperty(spec.Name);
            Assert.That(t.GetProperty("dtype").GetString(), Is.EqualTo(spec.DType.ToString()), spec.Name);
            Assert.That(t.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()), Is.EqualTo(spec.Shape), spec.Name);
            Assert.That(t.GetProperty("hex").GetString(), Is.EqualTo(Convert.ToHexStringLower(Expected(spec))), spec.Name);
        }
    }

    private static string ScriptPath()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tools", "reference", "read_checkpoint.py");
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException("tools/reference/read_checkpoint.py not found above the test folder");
    }

    /// <summary>The first interpreter that can import torch: $GPTJX_PYTHON, the system python3, then PATH.</summary>
    private static string? FindPython()
    {
        string?[] candidates = [Environment.GetEnvironmentVariable("GPTJX_PYTHON"), "/usr/bin/python3", "python3"];
        foreach (var candidate in candidates.OfType<string>())
        {
            try
            {
                if (Run(candidate, "-c", "import torch").Code == 0) return candidate;
            }
            catch (System.ComponentModel.Win32Exception) { /* not installed */ }
        }
        return null;
    }

    private static (int Code, string Output, string Error) Run(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(120_000)) { process.Kill(); return (-1, stdout, "timed out"); }
        return (process.ExitCode, stdout, stderr.Result);
    }
}
