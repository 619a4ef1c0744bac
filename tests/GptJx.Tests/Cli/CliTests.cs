using System.Text.Json;
using GptJx.Tests.Model;

namespace GptJx.Tests.Cli;

public class CliTests
{
    [Test]
    public void LogitsPrintsTheReferenceLogitsAsJson()
    {
        var golden = GoldenFixtures.Read("tiny-heads6");
        var r = CliRunner.Run("logits", "--model", TestPaths.Golden("tiny-heads6"), "--device", "cpu", "--ids", string.Join(',', golden.InputIds));
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.That(doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()), Is.EqualTo(golden.InputIds));
        var logits = doc.RootElement.GetProperty("logits").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var expected = golden.Logits[^1];
        Assert.That(logits, Is.EqualTo(expected).Within(1e-5f * expected.Max(Math.Abs)));
    }

    [Test]
    public void LogitsForAllPositionsAreTheReferenceRows()
    {
        var golden = GoldenFixtures.Read("tiny-bin");
        var r = CliRunner.Run("logits", "--model", TestPaths.Golden("tiny-bin"), "--device", "cpu", "--ids", string.Join(',', golden.InputIds), "--all-positions");
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var rows = doc.RootElement.GetProperty("logits").EnumerateArray().Select(row => row.EnumerateArray().Select(e => e.GetSingle()).ToArray()).ToArray();
        Assert.That(rows, Has.Length.EqualTo(golden.InputIds.Length));
        float tolerance = 1e-5f * golden.Logits.Max(row => row.Max(Math.Abs));
        for (int p = 0; p < rows.Length; p++)
            Assert.That(rows[p], Is.EqualTo(golden.Logits[p]).Within(tolerance), $"position {p}");
    }

    [Test]
    public void MakeTestModelThenGenerateStreamsText()
    {
        using var dir = new TempDirectory();
        var made = CliRunner.Run("make-test-model", "--out", dir.Path, "--layers", "1", "--width", "32", "--heads", "4", "--ffn", "40", "--format", "bin", "--dtype", "fp16");
        Assert.That(made.ExitCode, Is.Zero, made.Stderr);
        Assert.That(made.Stdout, Does.StartWith($"wrote {dir.Path}"));
        Assert.That(File.Exists(dir.File("pytorch_model.bin")) && File.Exists(dir.File("vocab.json")) && File.Exists(dir.File("merges.txt")), Is.True);

        var a = CliRunner.Run("generate", "--model", dir.Path, "--device", "cpu", "--max-new-tokens", "8", "--temperature", "0.9", "--seed", "4", "Hello");
        var b = CliRunner.Run("generate", "--model", dir.Path, "--device", "cpu", "--max-new-tokens", "8", "--temperature", "0.9", "--seed", "4", "Hello");
        Assert.That(a.ExitCode, Is.Zero, a.Stderr);
        Assert.That(a.Stdout.Trim(), Is.Not.Empty);
        Assert.That(b.Stdout, Is.EqualTo(a.Stdout), "same seed, same text");

        var inspect = CliRunner.Run("inspect", "--model", dir.Path, "--context", "100");
        Assert.That(inspect.ExitCode, Is.Zero, inspect.Stderr);
        Assert.That(inspect.Stdout, Does.Contain("parameters").And.Contain("fp16"));
    }

    [Test]
    public void EvalPrintsPerplexity()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("text.txt"), "The cat sat on the mat. The dog sat on the log.");
        var r = CliRunner.Run("eval", "--model", TestModels.SmallModelDirectory, "--device", "cpu", "--text-file", dir.File("text.txt"), "--json");
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        int tokens = doc.RootElement.GetProperty("tokens").GetInt32();
        double nll = doc.RootElement.GetProperty("mean_nll").GetDouble();
        Assert.That(tokens, Is.EqualTo(GptJx.Tokenization.Gpt2Tokenizer.Default.Encode("The cat sat on the mat. The dog sat on the log.").Length));
        Assert.That(doc.RootElement.GetProperty("perplexity").GetDouble(), Is.EqualTo(Math.Exp(nll)).Within(1e-9));
        Assert.That(nll, Is.GreaterThan(0).And.LessThan(Math.Log(50257) + 5), "a random model scores near uniform");

        var missing = CliRunner.Run("eval", "--model", TestModels.SmallModelDirectory, "--text-file", dir.File("nope.txt"));
        Assert.That(missing.ExitCode, Is.EqualTo(2));
        Assert.That(missing.Stderr, Does.StartWith("error: --text-file: '").And.Contain("nope.txt' does not exist"));
    }

    [Test]
    public void TokenizeAndDetokenizeRoundTrip()
    {
        var t = CliRunner.Run("tokenize", "--text", "Hello world", "--json");
        Assert.That(t.ExitCode, Is.Zero, t.Stderr);
        using var doc = JsonDocument.Parse(t.Stdout);
        Assert.That(doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()), Is.EqualTo(new[] { 15496, 995 }));
        var d = CliRunner.Run("detokenize", "--ids", "15496,995");
        Assert.That(d.Stdout.TrimEnd('\n'), Is.EqualTo("Hello world"));
    }

    [TestCase(new[] { "generate", "--model", "/nonexistent/model", "--device", "cpu", "hi" }, 2, "error: --model: folder '/nonexistent/model' does not exist")]
    [TestCase(new[] { "generate", "--model", "MODEL", "--device", "cpu", "--temperature", "-1", "hi" }, 2, "error: --temperature must be a finite number >= 0, 0 = greedy (got -1)")]
    [TestCase(new[] { "generate", "--model", "MODEL", "--device", "cpu", "--top-p", "2", "hi" }, 2, "error: --top-p must be in (0, 1] (got 2)")]
    [TestCase(new[] { "logits", "--model", "MODEL", "--device", "cpu", "--ids", "1,x" }, 2, "error: --ids: 'x' is not a token id")]
    [TestCase(new[] { "logits", "--model", "MODEL", "--device", "cpu", "--ids", "1,384" }, 2, "error: --ids: token id 384 is outside the model's vocabulary of 384")]
    [TestCase(new[] { "logits", "--model", "MODEL", "--device", "tpu", "--ids", "1" }, 2, "error: --device 'tpu' is not one of auto, cpu, cuda, cuda:N")]
    [TestCase(new[] { "logits", "--model", "MODEL", "--dtype", "int4", "--ids", "1" }, 2, "error: --dtype 'int4' is not one of fp32, fp16, bf16")]
    public void ErrorsAreOneLineAndNonZero(string[] args, int exitCode, string message)
    {
        var r = CliRunner.Run(args.Select(a => a == "MODEL" ? TestPaths.Golden("tiny-f32") : a).ToArray());
        Assert.That(r.ExitCode, Is.EqualTo(exitCode));
        Assert.That(r.Stderr.TrimEnd('\n').Split('\n'), Has.Length.EqualTo(1), r.Stderr);
        Assert.That(r.Stderr, Does.StartWith(message));
    }

    [Test]
    public void VerboseAddsTheStack()
    {
        var r = CliRunner.Run("logits", "--model", TestPaths.Golden("tiny-f32"), "--device", "cpu", "--ids", "1,384", "--verbose");
        Assert.That(r.ExitCode, Is.EqualTo(2));
        Assert.That(r.Stderr, Does.Contain("   at GptJx."));
    }

    [Test]
    public void PromptLongerThanTheContextIsRefused()
    {
        var r = CliRunner.Run("generate", "--model", TestModels.SmallModelDirectory, "--device", "cpu", string.Concat(Enumerable.Repeat(" word", 200)));
        Assert.That(r.ExitCode, Is.EqualTo(1));
        Assert.That(r.Stderr, Does.StartWith("error: prompt of 200 tokens leaves no room to generate: the model's context is 64 tokens"));
    }
}

public class CliDeviceTests
{
    [Test]
    public void CudaWithoutADeviceIsOneClearLineAndAutoFallsBack()
    {
        var probe = GptJx.Cuda.CudaDevice.Probe();
        if (probe.IsAvailable) Assert.Ignore($"a CUDA device is present ({probe.Reason}); the GPU tests cover it");
        var reason = probe.Reason;
        var cuda = CliRunner.Run("logits", "--model", TestPaths.Golden("tiny-f32"), "--device", "cuda", "--ids", "1,2");
        Assert.That(cuda.ExitCode, Is.EqualTo(1));
        Assert.That(cuda.Stderr.TrimEnd('\n').Split('\n'), Has.Length.EqualTo(1));
        Assert.That(cuda.Stderr, Does.StartWith("error: --device cuda: CUDA is not available: ").And.Contain(reason));

        var auto = CliRunner.Run("logits", "--model", TestPaths.Golden("tiny-f32"), "--device", "auto", "--ids", "1,2");
        Assert.That(auto.ExitCode, Is.Zero, auto.Stderr);
        Assert.That(auto.Stderr, Does.StartWith("note: CUDA not available (").And.Contain("running on the CPU"));
        Assert.That(auto.Stdout, Does.StartWith("{\"ids\":[1,2],\"logits\":["));
    }

    [Test]
    public void VerifyOnTheCpuAgainstItselfPasses()
    {
        var r = CliRunner.Run("verify", "--model", TestPaths.Golden("tiny-heads6"), "--device", "cpu", "--greedy-tokens", "4");
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        Assert.That(r.Stdout, Does.Contain("layer 2").And.Contain("greedy tokens identical: 4/4").And.EndWith("PASS\n"));
    }

    [Test]
    public void VerifyFailsABackendThatIsSlightlyWrong()
    {
        string dir = TestPaths.Golden("tiny-heads6");
        const string text = "1+2=3;4*5=6!7/8?9:0"; // 19 single-byte tokens, all inside the fixture's vocabulary of 384
        using var reference = GptJxModel.Load(dir, new GptJx.Backends.Cpu.CpuBackend());
        using var faulty = GptJxModel.Load(dir, new PerturbedBackend(error: 1e-3f));
        var output = new StringWriter();
        int exitCode = GptJx.Cli.Commands.VerifyCommand.Run(faulty, reference, text, greedyTokens: 4, output);
        TestContext.Out.Write(output);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(exitCode, Is.EqualTo(1), output.ToString());
        Assert.That(lines[0], Does.Contain(": 19 tokens, weights fp32, tolerance 0.0001"));
        Assert.That(lines, Has.Some.Match(@"^layer 0 +\S+ +\S+  FAIL$"), "the first layer's residual stream is already off");
        Assert.That(lines, Has.Some.Match(@"^logits +\S+ +\S+  FAIL$"));
        Assert.That(lines[^1], Is.EqualTo("FAIL"));

        using var exact = GptJxModel.Load(dir, new PerturbedBackend(error: 0f));
        Assert.That(GptJx.Cli.Commands.VerifyCommand.Run(exact, reference, text, 4, TextWriter.Null), Is.Zero, "the same backend without the fault passes");
    }
}
