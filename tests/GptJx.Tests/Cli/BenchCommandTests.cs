using System.Text.Json;

namespace GptJx.Tests.Cli;

public class BenchCommandTests
{
    /// <summary>The whole command on the tiny preset: table on stdout, every section in the JSON.</summary>
    [Test]
    public void BenchOnTheTinyPresetWritesTableAndJson()
    {
        var dir = Path.Combine(Path.GetTempPath(), $"gptjx-bench-test-{Environment.ProcessId}");
        try
        {
            string json = Path.Combine(dir, "bench.json");
            Directory.CreateDirectory(dir);
            var r = CliRunner.Run("bench", "--preset", "tiny", "--cache-dir", dir, "--device", "cpu",
                "--prompt-tokens", "5,12", "--new-tokens", "3", "--batch", "1,3", "--repeat", "2", "--json", json);
            Assert.That(r.ExitCode, Is.Zero, r.Stderr);
            Assert.That(r.Stdout, Does.Contain("prefill").And.Contain("decode").And.Contain("triad").And.Contain("peak RSS"));
            Assert.That(Directory.Exists(Path.Combine(dir, "tiny-bf16")), "the preset model is written to the cache folder");

            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var root = doc.RootElement;
            Assert.That(root.GetProperty("machine").GetProperty("details").GetProperty("cores").GetString(), Is.Not.Empty);
            Assert.That(root.GetProperty("machine").GetProperty("engine").GetString(), Is.Not.Empty);
            Assert.That(root.GetProperty("bandwidth").GetProperty("triad_g_bs").GetDouble(), Is.GreaterThan(0));
            Assert.That(root.GetProperty("compute").GetProperty("peak_gflops").GetDouble(), Is.GreaterThan(0));
            Assert.That(root.GetProperty("load").GetProperty("seconds").GetProperty("count").GetInt32(), Is.EqualTo(2));
            var prefill = root.GetProperty("prefill").EnumerateArray().ToArray();
            Assert.That(prefill.Select(p => p.GetProperty("prompt_tokens").GetInt32()), Is.EqualTo(new[] { 5, 12 }));
            Assert.That(prefill.Select(p => p.GetProperty("tokens_per_second").GetProperty("median").GetDouble()), Is.All.GreaterThan(0));
            var decode = root.GetProperty("decode").EnumerateArray().ToArray();
            Assert.That(decode.Select(d => d.GetProperty("batch").GetInt32()), Is.EqualTo(new[] { 1, 3 }));
            Assert.That(decode.Select(d => d.GetProperty("latency_p99_ms").GetDouble()), Is.All.GreaterThan(0));
            Assert.That(decode.Select(d => d.GetProperty("adjacent_weight_read_g_bs").GetDouble()), Is.All.GreaterThan(0));
            Assert.That(decode.Select(d => d.GetProperty("allocated_bytes_per_step").GetDouble()), Is.All.EqualTo(0), "steady decode allocates nothing");
            Assert.That(root.GetProperty("memory").GetProperty("peak_resident_bytes").GetInt64(), Is.GreaterThan(0));

            // A second run reuses the preset model.
            var again = CliRunner.Run("bench", "--preset", "tiny", "--cache-dir", dir, "--device", "cpu", "--no-ceilings",
                "--prompt-tokens", "4", "--new-tokens", "2", "--batch", "1", "--repeat", "1");
            Assert.That(again.ExitCode, Is.Zero, again.Stderr);
            Assert.That(again.Stderr, Does.Contain("using the random-weight tiny model"));
        }
        finally
        {
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }

    /// <summary>The default lengths fit the model: the tiny preset's context of 1024 takes the 128 and 512 token prompts.</summary>
    [Test]
    public void DefaultLengthsFitTheTinyPreset()
    {
        using var dir = new TempDirectory();
        string json = dir.File("bench.json");
        var r = CliRunner.Run("bench", "--preset", "tiny", "--cache-dir", dir.Path, "--device", "cpu", "--no-ceilings",
            "--batch", "1", "--repeat", "1", "--json", json);
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        Assert.That(root.GetProperty("prefill").EnumerateArray().Select(p => p.GetProperty("prompt_tokens").GetInt32()), Is.EqualTo(new[] { 128, 512 }));
        var decode = root.GetProperty("decode")[0];
        Assert.That(decode.GetProperty("context").GetInt32(), Is.EqualTo(128));
        Assert.That(decode.GetProperty("steps").GetInt32(), Is.EqualTo(64));
    }

    /// <summary>Lengths given on the command line that do not fit are refused by name, before the preset is written.</summary>
    [TestCase("--prompt-tokens", "128,2048", "error: --prompt-tokens 2048 is longer than the model's context of 1024 tokens")]
    [TestCase("--decode-context", "1000", "error: --decode-context 1000 leaves no room for 64 new tokens in the model's context of 1024 tokens (at most 959)")]
    [TestCase("--new-tokens", "1023", "error: --new-tokens 1023 leaves no room for a prompt in the model's context of 1024 tokens")]
    public void LengthsBeyondTheContextAreNamed(string option, string value, string message)
    {
        using var dir = new TempDirectory();
        var r = CliRunner.Run("bench", "--preset", "tiny", "--cache-dir", dir.Path, "--device", "cpu", option, value);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.Stderr);
        Assert.That(r.Stderr, Is.EqualTo(message + "\n"));
        Assert.That(Directory.EnumerateFileSystemEntries(dir.Path), Is.Empty, "nothing written");
    }

    [TestCase(new[] { "bench" }, "give either --model DIR or --preset NAME")]
    [TestCase(new[] { "bench", "--preset", "huge" }, "error: --preset 'huge' is not one of tiny, gpt-jx-3b")]
    [TestCase(new[] { "bench", "--preset", "tiny", "--batch", "0" }, "--batch: '0' is not a positive integer")]
    public void BadArgumentsAreUsageErrors(string[] args, string message)
    {
        var r = CliRunner.Run(args);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.Stderr);
        Assert.That(r.Stderr, Does.Contain(message));
    }
}
