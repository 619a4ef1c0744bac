using System.Text;
using GptJx.Tokenization;

namespace GptJx.Tests.Tokenization;

public sealed class Gpt2TokenizerTests
{
    [Test]
    public void DefaultIsGpt2()
    {
        var tokenizer = Gpt2Tokenizer.Default;
        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.VocabularySize, Is.EqualTo(50257));
            Assert.That(tokenizer.EndOfTextId, Is.EqualTo(50256));
            Assert.That(tokenizer.Source, Does.Contain("embedded"));
            Assert.That(tokenizer.SpecialTokens, Is.EqualTo(new[] { ("<|endoftext|>", 50256) }));
            Assert.That(tokenizer.Encode("Hello world"), Is.EqualTo(new[] { 15496, 995 }));
        });
    }

    [Test]
    public void EndOfTextIsPlainTextUnlessAskedFor()
    {
        var tokenizer = Gpt2Tokenizer.Default;
        string text = "a<|endoftext|>b";
        int[] plain = tokenizer.Encode(text);
        int[] parsed = tokenizer.Encode(text, parseSpecialTokens: true);
        Assert.Multiple(() =>
        {
            Assert.That(plain, Does.Not.Contain(50256));
            Assert.That(tokenizer.Decode(plain), Is.EqualTo(text), "the literal is ordinary text");
            Assert.That(parsed, Is.EqualTo(new[] { tokenizer.Encode("a")[0], 50256, tokenizer.Encode("b")[0] }));
            Assert.That(tokenizer.Encode("<|endoftext|>", parseSpecialTokens: true), Is.EqualTo(new[] { 50256 }));
            Assert.That(tokenizer.Encode("<|endoftext|><|endoftext|>x", parseSpecialTokens: true),
                Is.EqualTo(new[] { 50256, 50256, tokenizer.Encode("x")[0] }));
            Assert.That(tokenizer.Encode("no special here", parseSpecialTokens: true),
                Is.EqualTo(tokenizer.Encode("no special here")));
            Assert.That(tokenizer.Decode(parsed), Is.EqualTo(text));
            Assert.That(tokenizer.Decode(parsed, skipSpecialTokens: true), Is.EqualTo("ab"));
            Assert.That(tokenizer.IsSpecialToken(50256), Is.True);
            Assert.That(tokenizer.IsSpecialToken(15496), Is.False);
        });
    }

    [Test]
    public void LiteralEndOfTextMatchesTheOriginalEncoder()
    {
        // The original encoder has no notion of special tokens at all.
        var entry = TokenizerFixture.Get("endoftext-literal");
        Assert.That(Gpt2Tokenizer.Default.Encode(entry.Text), Is.EqualTo(entry.Ids));
        Assert.That(entry.Ids, Does.Not.Contain(50256));
    }

    [Test]
    public void DecodeBytesKeepsPartialCharacters()
    {
        var tokenizer = Gpt2Tokenizer.Default;
        int[] ids = tokenizer.Encode("日本😀");
        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.DecodeBytes(ids), Is.EqualTo(Encoding.UTF8.GetBytes("日本😀")));
            Assert.That(tokenizer.DecodeBytes(ids[..^1]), Is.EqualTo(
                ids[..^1].SelectMany(id => tokenizer.DecodeBytes([id])).ToArray()));
        });
    }

    [TestCase(50257)]
    [TestCase(-1)]
    [TestCase(int.MaxValue)]
    public void OutOfRangeIdIsAnErrorNamingTheId(int id)
    {
        var tokenizer = Gpt2Tokenizer.Default;
        Assert.Multiple(() =>
        {
            var ex = Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([15496, id]));
            Assert.That(ex!.Message, Does.Contain($"Token id {id} is outside the vocabulary of 50257 tokens"));
            Assert.That(ex.ActualValue, Is.EqualTo(id));
            Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.DecodeBytes([id]));
        });
    }

    [Test]
    public void LoneSurrogatesEncodeAsReplacementCharacter()
    {
        // Python cannot even encode these; UTF-8 has no lone surrogates, so
        // they become U+FFFD like everywhere else in .NET.
        var tokenizer = Gpt2Tokenizer.Default;
        Assert.That(tokenizer.Encode("a\ud800b \udc00"), Is.EqualTo(tokenizer.Encode("a\ufffdb \ufffd")));
    }

    [Test]
    public void EncodingIsThreadSafe()
    {
        var tokenizer = Gpt2Tokenizer.Load(null);
        var corpus = TokenizerFixture.Corpus;
        Parallel.For(0, corpus.Count * 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            var entry = corpus[i % corpus.Count];
            Assert.That(tokenizer.Encode(entry.Text), Is.EqualTo(entry.Ids), entry.Name);
        });
    }

    [Test]
    public void EncodesAMegabyteOfVariedTextAndDecodesItBack()
    {
        var tokenizer = Gpt2Tokenizer.Default;
        var sb = new StringBuilder();
        // Varied text, so that most pieces are not already cached by other tests.
        var random = new Random(7);
        var entries = TokenizerFixture.Corpus;
        while (sb.Length < 1_000_000)
        {
            string text = entries[random.Next(entries.Count)].Text;
            sb.Append(text).Append(' ').Append(random.Next()).Append(" w").Append(random.Next(100000)).Append('\n');
        }
        string megabyte = sb.ToString();
        int[] ids = tokenizer.Encode(megabyte);
        Assert.That(ids, Has.Length.GreaterThan(megabyte.Length / 10));
        Assert.That(tokenizer.Decode(ids), Is.EqualTo(megabyte));
    }

    /// <summary>
    /// One huge piece: the original's merge loop is quadratic in its length. Speed is for benchmarks;
    /// here the memory an encoding allocates must grow linearly: 4 times the run, at most 5 times the bytes.
    /// </summary>
    [TestCase("aZ0/+", 40_000)]
    [TestCase("=", 300_000)]
    [TestCase(" ", 300_000)]
    public void LongRunsWithoutSpacesRoundTripInMemoryLinearInTheirLength(string unit, int repeats)
    {
        var tokenizer = Gpt2Tokenizer.Default;
        long Allocated(string text)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            int[] ids = tokenizer.Encode(text);
            long bytes = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.That(tokenizer.Decode(ids), Is.EqualTo(text));
            return bytes;
        }
        long quarter = Allocated(string.Concat(Enumerable.Repeat(unit, repeats / 4)));
        long whole = Allocated(string.Concat(Enumerable.Repeat(unit, repeats)));
        TestContext.Out.WriteLine($"{unit.Length * repeats / 4:N0} chars: {quarter:N0} bytes allocated; {unit.Length * repeats:N0} chars: {whole:N0} bytes");
        Assert.That(whole, Is.LessThanOrEqualTo(5 * quarter));
    }
}
