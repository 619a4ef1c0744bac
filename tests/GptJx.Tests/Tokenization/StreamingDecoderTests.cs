using System.Text;
using GptJx.Tokenization;

namespace GptJx.Tests.Tokenization;

public sealed class StreamingDecoderTests
{
    /// <summary>Feeds ids one at a time and joins every piece of output.</summary>
    internal static string DecodeOneByOne(Gpt2Tokenizer tokenizer, IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var decoder = tokenizer.CreateStreamingDecoder(skipSpecialTokens);
        var sb = new StringBuilder();
        foreach (int id in ids) sb.Append(decoder.Append(id));
        return sb.Append(decoder.Flush()).ToString();
    }

    [Test]
    public void HoldsBackACharacterSplitAcrossTokens()
    {
        var tokenizer = Gpt2Tokenizer.Default;
        // The original encoder spells this emoji as three byte-level tokens.
        int[] ids = tokenizer.Encode("🤝");
        Assert.That(ids, Has.Length.GreaterThan(1), "test needs a character spread over tokens");

        var decoder = tokenizer.CreateStreamingDecoder();
        var outputs = ids.Select(decoder.Append).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(outputs.Take(ids.Length - 1), Is.All.Empty, "nothing before the character is complete");
            Assert.That(outputs[^1], Is.EqualTo("🤝"));
            Assert.That(decoder.Flush(), Is.Empty);
        });
    }

    [Test]
    public void ReturnsCompleteCharactersAsSoonAsTheyArrive()
    {
        var tokenizer = Gpt2Tokenizer.Default;
        var decoder = tokenizer.CreateStreamingDecoder();
        string text = "Hi 日本語 👋🏽 ok";
        var seen = new StringBuilder();
        foreach (int id in tokenizer.Encode(text))
        {
            seen.Append(decoder.Append(id));
            // Whatever came out so far is a prefix of the text, never a U+FFFD.
            Assert.That(text.StartsWith(seen.ToString(), StringComparison.Ordinal), Is.True, seen.ToString());
        }
        Assert.That(seen.Append(decoder.Flush()).ToString(), Is.EqualTo(text));
    }

    [Test]
    public void EverySplitOfMultiByteCharactersMatchesWholeDecode()
    {
        // Byte tokens one by one: every UTF-8 character is cut at every byte.
        var tokenizer = Gpt2Tokenizer.Default;
        string text = "é€😀𠀀 a\u0085b\ufeff👨\u200d👩\u200d👧";
        int[] byteIds = Encoding.UTF8.GetBytes(text).Select(b => ByteId(tokenizer, b)).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.Decode(byteIds), Is.EqualTo(text));
            Assert.That(DecodeOneByOne(tokenizer, byteIds), Is.EqualTo(text));
        });
    }

    [Test]
    public void FlushTurnsAnUnfinishedCharacterIntoOneReplacement()
    {
        var tokenizer = Gpt2Tokenizer.Default;
        byte[] euro = Encoding.UTF8.GetBytes("€");
        var decoder = tokenizer.CreateStreamingDecoder();
        Assert.Multiple(() =>
        {
            Assert.That(decoder.Append(ByteId(tokenizer, (byte)'a')), Is.EqualTo("a"));
            Assert.That(decoder.Append(ByteId(tokenizer, euro[0])), Is.Empty);
            Assert.That(decoder.Append(ByteId(tokenizer, euro[1])), Is.Empty);
            Assert.That(decoder.Flush(), Is.EqualTo("\ufffd"));
            Assert.That(decoder.Flush(), Is.Empty, "flush empties the decoder");
        });
    }

    [Test]
    public void InvalidBytesComeOutWithoutWaiting()
    {
        var tokenizer = Gpt2Tokenizer.Default;
        var decoder = tokenizer.CreateStreamingDecoder();
        // 0xE2 starts a 3-byte character; 'x' proves it never will.
        Assert.That(decoder.Append(ByteId(tokenizer, 0xE2)), Is.Empty);
        Assert.That(decoder.Append(ByteId(tokenizer, (byte)'x')), Is.EqualTo("\ufffdx"));
    }

    [Test]
    public void SpecialTokensAreTextOrSkipped()
    {
        var tokenizer = Gpt2Tokenizer.Default;
        int[] ids = [.. tokenizer.Encode("Hi"), tokenizer.EndOfTextId, .. tokenizer.Encode(" there")];
        Assert.Multiple(() =>
        {
            Assert.That(DecodeOneByOne(tokenizer, ids), Is.EqualTo("Hi<|endoftext|> there"));
            Assert.That(DecodeOneByOne(tokenizer, ids, skipSpecialTokens: true), Is.EqualTo("Hi there"));
        });
    }

    [Test]
    public void OutOfRangeIdNamesTheId()
    {
        var decoder = Gpt2Tokenizer.Default.CreateStreamingDecoder();
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => decoder.Append(50257));
        Assert.That(ex!.Message, Does.Contain("50257").And.Contain("outside the vocabulary"));
    }

    internal static int ByteId(Gpt2Tokenizer tokenizer, byte b)
    {
        // The single-byte token whose bytes are exactly b.
        for (int id = 0; id < 256; id++)
            if (tokenizer.DecodeBytes([id]) is [var only] && only == b) return id;
        throw new InvalidOperationException($"no token for byte {b}");
    }
}
