using System.Text.Json.Nodes;
using GptJx.TestModels;
using GptJx.Tests.Checkpoints;
using GptJx.Tokenization;

namespace GptJx.Tests.Tokenization;

/// <summary>Tokenizer files crafted to reach .NET's own errors: each is refused naming the file and the entry.</summary>
public sealed class HostileTokenizerFileTests
{
    private TempDirectory _dir = null!;

    [SetUp]
    public void CreateFolder() => _dir = new TempDirectory();

    [TearDown]
    public void DeleteFolder() => _dir.Dispose();

    private static InvalidDataException Fails(string directory) => Assert.Throws<InvalidDataException>(() => Gpt2Tokenizer.Load(directory))!;

    [Test]
    public void AnAddedTokenIdThatIsNotAnIntegerIsNamed()
    {
        File.WriteAllText(_dir.File("tokenizer.json"),
            """{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 1.5, "content": "<|endoftext|>"}]}""");
        Assert.That(Fails(_dir.Path).Message, Is.EqualTo($"{_dir.File("tokenizer.json")}: an added_tokens entry lacks an integer \"id\" or a string \"content\"."));
    }

    [Test]
    public void AHugeIdIsAGapNotAnIndexError()
    {
        Gpt2Tokenizer.Default.WriteFiles(_dir.Path);
        var vocab = JsonNode.Parse(File.ReadAllText(_dir.File("vocab.json")))!.AsObject();
        vocab["<|endoftext|>"] = int.MaxValue;
        File.WriteAllText(_dir.File("vocab.json"), vocab.ToJsonString());
        Assert.That(Fails(_dir.Path).Message,
            Is.EqualTo($"{_dir.File("vocab.json")}: the largest id is 2147483647, but 50257 tokens cannot fill ids 0..2147483647 without gaps."));
    }

    [Test]
    public void AVocabularyStringThatIsNotTextIsNamed()
    {
        File.WriteAllText(_dir.File("tokenizer.json"), """{"model": {"type": "BPE", "vocab": {"\ud800": 0}, "merges": []}}""");
        Assert.That(Fails(_dir.Path).Message,
            Is.EqualTo($"{_dir.File("tokenizer.json")}: a property name in model.vocab is not valid text (invalid UTF-8 or an unpaired surrogate escape)."));
    }

    [Test]
    public void AFifoNamedMergesTxtIsRefusedWithoutBlocking()
    {
        Gpt2Tokenizer.Default.WriteFiles(_dir.Path);
        File.Delete(_dir.File("merges.txt"));
        HostileCheckpointTests.MakeFifo(_dir.File("merges.txt"));
        var load = Task.Run(() => Fails(_dir.Path));
        Assert.That(load.Wait(TimeSpan.FromSeconds(60)), Is.True, "reading a FIFO blocks until a writer comes");
        Assert.That(load.Result.Message, Is.EqualTo($"{_dir.File("merges.txt")}: is a FIFO (named pipe), not a regular file."));
    }
}
