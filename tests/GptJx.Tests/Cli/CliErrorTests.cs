using System.Text;
using System.Text.Json;
using GptJx.Tests.Checkpoints;
using GptJx.Tests.Model;
using GptJx.Tokenization;

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

    // ---- --text-file: the text exactly as written ------------------------------------------

    [Test]
    public void ALeadingByteOrderMarkIsPartOfTheText()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("bom.txt"), [0xEF, 0xBB, 0xBF, .. "Hello world"u8]);
        var r = CliRunner.Run("tokenize", "--text-file", dir.File("bom.txt"));
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
        var expected = Gpt2Tokenizer.Default.Encode("\uFEFFHello world");
        Assert.That(r.Stdout.TrimEnd('\n'), Is.EqualTo(string.Join(',', expected)));
        Assert.That(expected[..2], Is.Not.EqualTo(Gpt2Tokenizer.Default.Encode("Hello world")[..2]), "the mark changes the tokens, as in Python");
    }

    [Test]
    public void InvalidUtf8IsAnErrorNamingTheOffsetUnlessReplaced()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("bad.txt"), [.. "caf"u8, 0xE9, .. " au lait"u8]);   // Latin-1 é
        foreach (var command in new[] { "tokenize", "eval" })
        {
            string[] args = command == "eval"
                ? ["eval", "--model", TestModels.SmallModelDirectory, "--device", "cpu", "--text-file", dir.File("bad.txt")]
                : ["tokenize", "--text-file", dir.File("bad.txt")];
            var r = CliRunner.Run(args);
            Assert.That(r.ExitCode, Is.EqualTo(1), command);
            Assert.That(r.Stderr.TrimEnd('\n'), Is.EqualTo(
                $"error: --text-file '{dir.File("bad.txt")}': byte 0xE9 at offset 3 is not valid UTF-8 (--invalid-utf8 replace reads it as U+FFFD)"), command);
        }

        var replaced = CliRunner.Run("tokenize", "--text-file", dir.File("bad.txt"), "--invalid-utf8", "replace");
        Assert.That(replaced.ExitCode, Is.Zero, replaced.Stderr);
        Assert.That(replaced.Stdout.TrimEnd('\n'), Is.EqualTo(string.Join(',', Gpt2Tokenizer.Default.Encode("caf\uFFFD au lait"))));

        var wrong = CliRunner.Run("tokenize", "--text-file", dir.File("bad.txt"), "--invalid-utf8", "ignore");
        Assert.That(wrong.ExitCode, Is.EqualTo(2));
        Assert.That(wrong.Stderr.TrimEnd('\n'), Is.EqualTo("error: --invalid-utf8 'ignore' is not one of error, replace"));
    }

    [Test]
    public void AFifoAsTheTextFileIsRefusedWithoutBlocking()
    {
        using var dir = new TempDirectory();
        string fifo = HostileCheckpointTests.MakeFifo(dir.File("text.txt"));
        var r = CliRunner.Run("tokenize", "--text-file", fifo);
        Assert.That(r.ExitCode, Is.EqualTo(2));
        Assert.That(r.Stderr.TrimEnd('\n'), Is.EqualTo($"error: --text-file: '{fifo}' is a FIFO (named pipe), not a regular file"));
    }

    // ---- logits ---------------------------------------------------------------------------

    [Test]
    public void AllPositionsAreStreamedRowByRowAndAgreeWithTheLastPosition()
    {
        var ids = string.Join(',', Enumerable.Range(0, 60).Select(i => 100 + 37 * i));
        var all = CliRunner.Run("logits", "--model", TestModels.SmallModelDirectory, "--device", "cpu", "--ids", ids, "--all-positions");
        var last = CliRunner.Run("logits", "--model", TestModels.SmallModelDirectory, "--device", "cpu", "--ids", ids);
        Assert.That(all.ExitCode, Is.Zero, all.Stderr);
        using var allJson = JsonDocument.Parse(all.Stdout);
        using var lastJson = JsonDocument.Parse(last.Stdout);
        var rows = allJson.RootElement.GetProperty("logits").EnumerateArray().ToArray();
        Assert.That(rows, Has.Length.EqualTo(60));
        Assert.That(rows.Select(r => r.GetArrayLength()), Is.All.EqualTo(50257));
        Assert.That(rows[^1].EnumerateArray().Select(e => e.GetSingle()),
            Is.EqualTo(lastJson.RootElement.GetProperty("logits").EnumerateArray().Select(e => e.GetSingle())).Within(1e-4f));
    }

    [Test]
    public void LogitsThatAreNotFiniteAreAnErrorNamingThePosition()
    {
        using var model = HostileModelTests.OverflowingModel();
        var r = CliRunner.Run("logits", "--model", model.Path, "--device", "cpu", "--ids", "1,2,3", "--all-positions");
        Assert.That(r.ExitCode, Is.EqualTo(1));
        Assert.That(r.Stderr, Does.StartWith("error: the model's logits at position 0 are not finite (token id "));

        var generate = CliRunner.Run("generate", "--model", model.Path, "--device", "cpu", "Hello");
        Assert.That(generate.ExitCode, Is.EqualTo(1));
        Assert.That(generate.Stderr, Does.StartWith("error: the model's logits are not finite (token id "));
    }

    [Test]
    public void IdsBeyondTheModelAreUsageErrors()
    {
        var outside = CliRunner.Run("logits", "--model", TestModels.SmallModelDirectory, "--device", "cpu", "--ids", "1,50257");
        Assert.That(outside.ExitCode, Is.EqualTo(2));
        Assert.That(outside.Stderr.TrimEnd('\n'), Is.EqualTo("error: --ids: token id 50257 is outside the model's vocabulary of 50257"));
        var tooMany = CliRunner.Run("logits", "--model", TestModels.SmallModelDirectory, "--device", "cpu", "--ids", string.Join(',', Enumerable.Repeat(5, 65)));
        Assert.That(tooMany.ExitCode, Is.EqualTo(2));
        Assert.That(tooMany.Stderr.TrimEnd('\n'), Is.EqualTo("error: --ids: 65 ids exceed the model's context of 64"));
        var detokenize = CliRunner.Run("detokenize", "--ids", "15496,99999");
        Assert.That(detokenize.ExitCode, Is.EqualTo(2));
        Assert.That(detokenize.Stderr.TrimEnd('\n'), Is.EqualTo("error: --ids: token id 99999 is outside the tokenizer's vocabulary of 50257"));
    }

    // ---- inspect ---------------------------------------------------------------------------

    [Test]
    public void InspectCountsHugeConfigsWithoutOverflowOrRefusesThem()
    {
        using var dir = new TempDirectory();
        foreach (var file in Directory.GetFiles(TestModels.SmallModelDirectory)) File.Copy(file, dir.File(Path.GetFileName(file)));
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!.AsObject();

        config["n_layer"] = int.MaxValue;   // 2^31 layers of width 32: large, but countable
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        var big = CliRunner.Run("inspect", "--model", dir.Path);
        Assert.That(big.ExitCode, Is.Zero, big.Stderr);
        string count = big.Stdout.Split('\n').Single(l => l.StartsWith("parameters", StringComparison.Ordinal))["parameters".Length..].Trim();
        Assert.That(long.Parse(count, System.Globalization.NumberStyles.AllowThousands, System.Globalization.CultureInfo.InvariantCulture),
            Is.EqualTo(new GptJx.Model.ModelConfig { Layers = int.MaxValue, Width = 32, FeedForwardWidth = 70, Heads = 4, ContextLength = 64, VocabularySize = 50257 }.ParameterCount));

        config["n_embd"] = 2147483520;
        config["n_head"] = 1;
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        var huge = CliRunner.Run("inspect", "--model", dir.Path);
        Assert.That(huge.ExitCode, Is.EqualTo(1));
        Assert.That(huge.Stderr, Does.Contain("give more parameters than a 64-bit count holds"));
    }
}
