using System.Net;
using System.Net.Sockets;

namespace GptJx.Tests.Cli;

/// <summary>
/// A command line the parser refuses is one line on stderr naming what was wrong, exit code 2, and
/// no help; help is printed only for --help and says `gptjx`.
/// </summary>
public class CommandLineTests
{
    private static readonly string[] Commands =
        ["generate", "logits", "eval", "tokenize", "detokenize", "inspect", "make-test-model", "verify", "bench", "serve"];

    private static void AssertRefused(CliRunner.Result r, string message)
    {
        Assert.That(r.ExitCode, Is.EqualTo(2), r.Stderr);
        Assert.That(r.Stderr, Is.EqualTo(message + "\n"), "one line");
        Assert.That(r.Stdout, Is.Empty, "no help");
    }

    [Test]
    public void AnUnknownOptionIsNamedByEveryCommand()
    {
        foreach (var command in Commands)
            AssertRefused(CliRunner.Run(command, "--bogus"), $"error: unknown option '--bogus' for gptjx {command} (see gptjx {command} --help)");
    }

    [TestCase(new[] { "generate", "hi", "--bogus" }, "error: unknown option '--bogus' for gptjx generate (see gptjx generate --help)")]
    [TestCase(new[] { "generate", "--max-new-tokens", "abc", "hi" }, "error: --max-new-tokens: 'abc' is not an integer")]
    [TestCase(new[] { "generate", "--seed", "-3", "hi" }, "error: --seed: '-3' is not a non-negative integer")]
    [TestCase(new[] { "generate", "--temperature", "warm", "hi" }, "error: --temperature: 'warm' is not a number")]
    [TestCase(new[] { "generate", "--temperature" }, "error: --temperature needs a value")]
    [TestCase(new[] { "generate" }, "error: gptjx generate needs a prompt (see gptjx generate --help)")]
    [TestCase(new[] { "logits", "--model", "m", "--ids" }, "error: --ids needs a value")]
    [TestCase(new[] { "inspect" }, "error: --model is required (see gptjx inspect --help)")]
    [TestCase(new[] { "serve", "--timeout", "soon" }, "error: --timeout: 'soon' is not a number")]
    [TestCase(new[] { "bench", "--preset", "tiny", "--new-tokens", "1.5" }, "error: --new-tokens: '1.5' is not an integer")]
    [TestCase(new[] { "tokenize", "extra", "--text", "hi" }, "error: unexpected argument 'extra' for gptjx tokenize (see gptjx tokenize --help)")]
    [TestCase(new[] { "bogus" }, "error: unknown command 'bogus' (see gptjx --help)")]
    [TestCase(new string[0], "error: no command given (see gptjx --help)")]
    public void ParseErrorsAreOneLineNamingTheOption(string[] args, string message) => AssertRefused(CliRunner.Run(args), message);

    [Test]
    public void APromptThatStartsWithADashGoesAfterTheDoubleDash()
    {
        var r = CliRunner.Run("generate", "--model", TestModels.SmallModelDirectory, "--device", "cpu", "-n", "1", "--", "-x");
        Assert.That(r.ExitCode, Is.Zero, r.Stderr);
    }

    [Test]
    public void HelpIsShownForHelpOnlyAndSaysGptjx()
    {
        var root = CliRunner.Run("--help");
        Assert.That(root.ExitCode, Is.Zero, root.Stderr);
        Assert.That(root.Stdout, Does.Contain("gptjx [command] [options]").And.Contain("generate <prompt>"));
        foreach (var command in Commands)
        {
            var r = CliRunner.Run(command, "--help");
            Assert.That(r.ExitCode, Is.Zero, r.Stderr);
            Assert.That(r.Stdout, Does.Contain($"Usage:\n  gptjx {command}"), command);
            Assert.That(r.Stdout, Does.Not.Contain("GptJx.Cli").And.Not.Contain("System."), command);
        }
    }

    [Test]
    public void ServeOnABusyPortIsOneLine()
    {
        using var busy = new TcpListener(IPAddress.Loopback, 0);
        busy.Start();
        int port = ((IPEndPoint)busy.LocalEndpoint).Port;
        var r = CliRunner.Run("serve", "--model", TestModels.SmallModelDirectory, "--device", "cpu", "--port", port.ToString());
        Assert.That(r.ExitCode, Is.EqualTo(1));
        Assert.That(r.Stderr, Is.EqualTo($"error: Failed to bind to address http://127.0.0.1:{port}: address already in use.\n"));
        Assert.That(r.Stdout, Is.Empty, "no stack trace from the host's log");
    }
}
