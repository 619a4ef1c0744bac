namespace GptJx.Tests.Cli;

/// <summary>
/// Values the library refuses come back as the option the user typed (exit code 2), through the one
/// parameter-to-option table, and limits that used to overflow are stated instead.
/// </summary>
public class CliErrorTests
{
    // serve checks its engine options before it loads anything, so these need no model.
    [TestCase(new[] { "serve", "--max-batch", "0" }, "error: --max-batch must be 1..1024 (got 0)")]
    [TestCase(new[] { "serve", "--max-batch", "100000" }, "error: --max-batch must be 1..1024 (got 100000)")]
    [TestCase(new[] { "serve", "--prefill-chunk", "2147483647" }, "error: --prefill-chunk must be 1..65536 tokens (got 2147483647)")]
    [TestCase(new[] { "serve", "--max-queue", "-1" }, "error: --max-queue must be zero or more (got -1)")]
    [TestCase(new[] { "serve", "--max-seq-len", "1" }, "error: --max-seq-len must be at least 2, one prompt token and one generated (got 1)")]
    [TestCase(new[] { "serve", "--timeout", "NaN" }, "error: --timeout must be a positive number of seconds (got NaN)")]
    [TestCase(new[] { "serve", "--timeout", "1e300" }, "error: --timeout must be a positive number of seconds (got 1E+300)")]
    [TestCase(new[] { "serve", "--timeout", "1e9" }, "error: --timeout must be positive and at most 30 days (got 1000000000 s)")]
    [TestCase(new[] { "serve", "--timeout", "-5" }, "error: --timeout must be positive and at most 30 days (got -5 s)")]
    [TestCase(new[] { "generate", "--model", "MODEL", "--device", "cpu", "--max-new-tokens", "-1", "hi" }, "error: --max-new-tokens must be zero or more (got -1)")]
    [TestCase(new[] { "generate", "--model", "MODEL", "--device", "cpu", "--stop", "", "hi" }, "error: --stop must not be empty")]
    [TestCase(new[] { "generate", "--model", "MODEL", "--device", "cuda:x", "hi" }, "error: --device 'cuda:x' is not cuda:N with N a device number")]
    [TestCase(new[] { "eval", "--model", "MODEL", "--device", "cpu", "--text-file", "TEXT", "--context", "1" }, "error: --context must be 2..64 tokens (got 1)")]
    [TestCase(new[] { "make-test-model", "--out", "OUT", "--preset", "huge" }, "error: --preset 'huge' is not one of tiny, gpt-jx-3b")]
    public void RefusedValuesNameTheOption(string[] args, string message)
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("text.txt"), "Some text to score.");
        var r = CliRunner.Run(args.Select(a => a switch
        {
            "MODEL" => TestModels.SmallModelDirectory,
            "TEXT" => dir.File("text.txt"),
            "OUT" => dir.File("out"),
            _ => a,
        }).ToArray());
        Assert.That(r.ExitCode, Is.EqualTo(2), r.Stderr);
        Assert.That(r.Stderr.TrimEnd('\n'), Is.EqualTo(message));
    }
}
