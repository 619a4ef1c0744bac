using System.Text.Json;
using GptJx.TestModels;
using GptJx.Tokenization;

namespace GptJx.Tests.Tokenization;

/// <summary>
/// The reference fixture in tests/fixtures/tokenizer, generated once by
/// tools/reference/gpt2_tokenizer_fixture.py from OpenAI's original files.
/// </summary>
public static class TokenizerFixture
{
    public sealed record Entry(string Name, string Text, int[] Ids)
    {
        public override string ToString() => Name;
    }

    private static readonly Lazy<string> Folder = new(FindFolder);
    private static readonly Lazy<IReadOnlyList<Entry>> CorpusEntries = new(() => Read("corpus.jsonl"));
    private static readonly Lazy<IReadOnlyList<Entry>> DecodeEntries = new(() => Read("decode.jsonl"));

    public static IReadOnlyList<Entry> Corpus => CorpusEntries.Value;

    /// <summary>Id sequences whose bytes include broken UTF-8, with Python's errors="replace" text.</summary>
    public static IReadOnlyList<Entry> DecodeCases => DecodeEntries.Value;

    public static Entry Get(string name) => Corpus.Single(e => e.Name == name);

    public static string PathOf(string file) => Path.Combine(Folder.Value, file);

    // NUnit sources: one test case per entry, named after it.
    public static IEnumerable<TestCaseData> CorpusCases() =>
        Corpus.Select(e => new TestCaseData(e).SetArgDisplayNames(e.Name));

    public static IEnumerable<TestCaseData> DecodeCaseData() =>
        DecodeCases.Select(e => new TestCaseData(e).SetArgDisplayNames(e.Name));

    /// <summary>A tokenizer read back from files written from the embedded ranks.</summary>
    public static Gpt2Tokenizer FromWrittenFiles => WrittenFiles.Value;

    private static readonly Lazy<Gpt2Tokenizer> WrittenFiles = new(() =>
    {
        string dir = Path.Combine(Path.GetTempPath(), "gptjx-tok-" + Guid.NewGuid().ToString("N"));
        Gpt2Tokenizer.Default.WriteFiles(dir);
        try { return Gpt2Tokenizer.Load(dir); }
        finally { Directory.Delete(dir, recursive: true); }
    });

    private static IReadOnlyList<Entry> Read(string file)
    {
        var entries = new List<Entry>();
        foreach (string line in File.ReadLines(PathOf(file)))
        {
            if (line.Length == 0) continue;
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            entries.Add(new Entry(
                root.GetProperty("name").GetString()!,
                root.GetProperty("text").GetString()!,
                root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray()));
        }
        return entries;
    }

    // The fixture lives in the source tree, not the build output: walk up
    // from the test binaries to the repository's tests/fixtures folder.
    private static string FindFolder()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "fixtures", "tokenizer");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException(
            "tests/fixtures/tokenizer not found above " + TestContext.CurrentContext.TestDirectory);
    }
}
