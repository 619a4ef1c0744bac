using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using GptJx.TestModels;
using GptJx.Tokenization;

namespace GptJx.Tests.Tokenization;

/// <summary>Loading from vocab.json + merges.txt, tokenizer.json and the embedded ranks, and the errors.</summary>
public sealed class TokenizerFileTests
{
    private string _dir = null!;

    [SetUp]
    public void CreateFolder()
    {
        _dir = Path.Combine(Path.GetTempPath(), "gptjx-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void DeleteFolder() => Directory.Delete(_dir, recursive: true);

    private string FileIn(string name) => Path.Combine(_dir, name);

    [Test]
    public void WrittenFilesAreTheOriginalGpt2Files()
    {
        // Sizes and SHA-256 of OpenAI's encoder.json and vocab.bpe, recorded by the fixture generator.
        using var expected = JsonDocument.Parse(File.ReadAllText(TokenizerFixture.PathOf("gpt2-files.json")));
        Gpt2Tokenizer.Default.WriteFiles(_dir);
        Assert.Multiple(() =>
        {
            foreach (string name in new[] { "vocab.json", "merges.txt" })
            {
                byte[] written = File.ReadAllBytes(FileIn(name));
                var want = expected.RootElement.GetProperty(name);
                Assert.That(written.Length, Is.EqualTo(want.GetProperty("bytes").GetInt32()), name + " size");
                Assert.That(Convert.ToHexStringLower(SHA256.HashData(written)), Is.EqualTo(want.GetProperty("sha256").GetString()), name + " SHA-256");
            }
        });
    }

    [Test]
    public void LoadsVocabAndMerges()
    {
        Gpt2Tokenizer.Default.WriteFiles(_dir);
        var tokenizer = Gpt2Tokenizer.Load(_dir);
        AssertIsGpt2(tokenizer);
        Assert.That(tokenizer.Source, Does.Contain(_dir).And.Contain("vocab.json"));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void LoadsTokenizerJson(bool mergesAsPairs)
    {
        WriteTokenizerJson(mergesAsPairs);
        var tokenizer = Gpt2Tokenizer.Load(_dir);
        AssertIsGpt2(tokenizer);
        Assert.That(tokenizer.Source, Does.Contain("tokenizer.json"));
    }

    [Test]
    public void PrefersVocabAndMergesOverTokenizerJson()
    {
        Gpt2Tokenizer.Default.WriteFiles(_dir);
        File.WriteAllText(FileIn("tokenizer.json"), "not read");
        Assert.That(Gpt2Tokenizer.Load(_dir).Source, Does.Contain("vocab.json"));
    }

    [Test]
    public void FallsBackToEmbeddedRanks()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Gpt2Tokenizer.Load(null), Is.SameAs(Gpt2Tokenizer.Default));
            Assert.That(Gpt2Tokenizer.Load(_dir).Source, Does.Contain("embedded"), "a folder with no tokenizer files");
        });
    }

    [Test]
    public void MissingFolderIsAnError()
    {
        string missing = FileIn("nope");
        var ex = Assert.Throws<DirectoryNotFoundException>(() => Gpt2Tokenizer.Load(missing));
        Assert.That(ex!.Message, Does.Contain(missing));
    }

    [Test]
    public void VocabWithoutMergesIsAnErrorNamingMergesTxt()
    {
        Gpt2Tokenizer.Default.WriteFiles(_dir);
        File.Delete(FileIn("merges.txt"));
        var ex = Assert.Throws<FileNotFoundException>(() => Gpt2Tokenizer.Load(_dir));
        Assert.Multiple(() =>
        {
            Assert.That(ex!.Message, Does.Contain(FileIn("merges.txt")).And.Contain("is missing"));
            Assert.That(ex.FileName, Is.EqualTo(FileIn("merges.txt")));
        });
    }

    [Test]
    public void MergesWithoutVocabIsAnErrorNamingVocabJson()
    {
        Gpt2Tokenizer.Default.WriteFiles(_dir);
        File.Delete(FileIn("vocab.json"));
        var ex = Assert.Throws<FileNotFoundException>(() => Gpt2Tokenizer.Load(_dir));
        Assert.That(ex!.Message, Does.Contain(FileIn("vocab.json")).And.Contain("is missing"));
    }

    [Test]
    public void MalformedVocabJsonIsAnErrorNamingTheFile()
    {
        Gpt2Tokenizer.Default.WriteFiles(_dir);
        File.WriteAllText(FileIn("vocab.json"), "{\"a\": 0, \"b\": ");
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.Load(_dir));
        Assert.That(ex!.Message, Does.StartWith(FileIn("vocab.json") + ": not valid JSON"));
    }

    [Test]
    public void VocabJsonThatIsNotAnObjectIsAnError()
    {
        Gpt2Tokenizer.Default.WriteFiles(_dir);
        File.WriteAllText(FileIn("vocab.json"), "[1, 2, 3]");
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.Load(_dir));
        Assert.That(ex!.Message, Is.EqualTo(FileIn("vocab.json") + ": the whole file must be a JSON object mapping token strings to ids."));
    }

    [Test]
    public void NonIntegerIdIsAnErrorNamingTheToken()
    {
        Gpt2Tokenizer.Default.WriteFiles(_dir);
        File.WriteAllText(FileIn("vocab.json"), "{\"a\": \"zero\"}");
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.Load(_dir));
        Assert.That(ex!.Message, Is.EqualTo(FileIn("vocab.json") + ": the id of token 'a' is not an integer."));
    }

    [Test]
    public void MergeOfUnknownTokenIsAnErrorNamingTheLine()
    {
        Gpt2Tokenizer.Default.WriteFiles(_dir);
        var lines = File.ReadAllLines(FileIn("merges.txt"));
        lines[3] = "Ġt zzzzqqq";
        File.WriteAllLines(FileIn("merges.txt"), lines);
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.Load(_dir));
        Assert.That(ex!.Message, Is.EqualTo(FileIn("merges.txt") + " line 4: token 'zzzzqqq' is not in the vocabulary."));
    }

    [Test]
    public void MalformedMergeLineIsAnError()
    {
        Gpt2Tokenizer.Default.WriteFiles(_dir);
        var lines = File.ReadAllLines(FileIn("merges.txt"));
        lines[1] = "Ġt";
        File.WriteAllLines(FileIn("merges.txt"), lines);
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.Load(_dir));
        Assert.That(ex!.Message, Is.EqualTo(FileIn("merges.txt") + " line 2: expected two tokens separated by one space, got 'Ġt'."));
    }

    [Test]
    public void VocabWithoutEveryByteIsAnError()
    {
        File.WriteAllText(FileIn("vocab.json"), "{\"a\": 0, \"b\": 1, \"<|endoftext|>\": 2}");
        File.WriteAllText(FileIn("merges.txt"), "#version: 0.2\n");
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.Load(_dir));
        Assert.That(ex!.Message, Does.StartWith(FileIn("vocab.json") + ": no token for byte 0x00"));
    }

    [Test]
    public void GapInIdsIsAnError()
    {
        Gpt2Tokenizer.Default.WriteFiles(_dir);
        var vocab = JsonNode.Parse(File.ReadAllText(FileIn("vocab.json")))!.AsObject();
        vocab.Remove("Ġthe");
        File.WriteAllText(FileIn("vocab.json"), vocab.ToJsonString());
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.Load(_dir));
        Assert.That(ex!.Message, Does.StartWith(FileIn("merges.txt") + " line 8: token 'Ġthe' is not in the vocabulary"));
    }

    [Test]
    public void TokenizerJsonWithoutModelIsAnError()
    {
        File.WriteAllText(FileIn("tokenizer.json"), "{\"version\": \"1.0\"}");
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.Load(_dir));
        Assert.That(ex!.Message, Is.EqualTo(FileIn("tokenizer.json") + ": no \"model\" object; is this a Hugging Face tokenizer.json?"));
    }

    [Test]
    public void TokenizerJsonOfAnotherModelTypeIsAnError()
    {
        File.WriteAllText(FileIn("tokenizer.json"), "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.Load(_dir));
        Assert.That(ex!.Message, Does.Contain("tokenizer.json: model.type is \"Unigram\""));
    }

    [Test]
    public void TruncatedTokenizerJsonIsAnErrorNamingTheFile()
    {
        File.WriteAllText(FileIn("tokenizer.json"), "{\"model\": {\"type\": \"BPE\", ");
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.Load(_dir));
        Assert.That(ex!.Message, Does.StartWith(FileIn("tokenizer.json") + ": not valid JSON"));
    }

    [Test]
    public void VocabWithoutEndOfTextIsAnError()
    {
        // Every byte, no merges, no <|endoftext|>.
        var vocab = new JsonObject();
        var scratch = Path.Combine(_dir, "full");
        Gpt2Tokenizer.Default.WriteFiles(scratch);
        foreach (var (token, id) in JsonNode.Parse(File.ReadAllText(Path.Combine(scratch, "vocab.json")))!.AsObject())
            if ((int)id! < 256) vocab[token] = (int)id!;
        File.WriteAllText(FileIn("vocab.json"), vocab.ToJsonString());
        File.WriteAllText(FileIn("merges.txt"), "#version: 0.2\n");
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.Load(_dir));
        Assert.That(ex!.Message, Does.Contain("no '<|endoftext|>' token"));
    }

    private static void AssertIsGpt2(Gpt2Tokenizer tokenizer)
    {
        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.VocabularySize, Is.EqualTo(50257));
            Assert.That(tokenizer.EndOfTextId, Is.EqualTo(50256));
            Assert.That(tokenizer.SpecialTokens, Is.EqualTo(new[] { ("<|endoftext|>", 50256) }));
            foreach (var entry in TokenizerFixture.Corpus.Where((_, i) => i % 7 == 0))
                Assert.That(tokenizer.Encode(entry.Text), Is.EqualTo(entry.Ids), entry.Name);
            Assert.That(tokenizer.Encode("<|endoftext|>", parseSpecialTokens: true), Is.EqualTo(new[] { 50256 }));
        });
    }

    /// <summary>A Hugging Face style tokenizer.json built from the written vocab.json/merges.txt.</summary>
    private void WriteTokenizerJson(bool mergesAsPairs)
    {
        string scratch = Path.Combine(_dir, "files");
        Gpt2Tokenizer.Default.WriteFiles(scratch);
        var vocab = JsonNode.Parse(File.ReadAllText(Path.Combine(scratch, "vocab.json")))!;
        var merges = new JsonArray();
        foreach (string line in File.ReadLines(Path.Combine(scratch, "merges.txt")).Skip(1))
        {
            string[] parts = line.Split(' ');
            merges.Add(mergesAsPairs ? new JsonArray(parts[0], parts[1]) : (JsonNode)line);
        }
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(new JsonObject
            {
                ["id"] = 50256, ["content"] = "<|endoftext|>", ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = true, ["special"] = true,
            }),
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["vocab"] = vocab.DeepClone(), ["merges"] = merges,
            },
        };
        File.WriteAllText(FileIn("tokenizer.json"), root.ToJsonString());
    }
}
