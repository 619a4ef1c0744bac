using GptJx.Tokenization;

namespace GptJx.Tests.Tokenization;

/// <summary>
/// Every corpus entry against the ids of the original GPT-2 encoder: prose in
/// many scripts, code, whitespace runs, numbers, contractions, emoji, letters
/// and digits outside the BMP, and the odd white space / format characters.
/// </summary>
public sealed class Gpt2TokenizerCorpusTests
{
    [TestCaseSource(typeof(TokenizerFixture), nameof(TokenizerFixture.CorpusCases))]
    public void EmbeddedRanksEncodeLikeTheOriginal(TokenizerFixture.Entry entry)
    {
        Assert.That(Gpt2Tokenizer.Default.Encode(entry.Text), Is.EqualTo(entry.Ids));
    }

    [TestCaseSource(typeof(TokenizerFixture), nameof(TokenizerFixture.CorpusCases))]
    public void WrittenFilesEncodeLikeTheOriginal(TokenizerFixture.Entry entry)
    {
        Assert.That(TokenizerFixture.FromWrittenFiles.Encode(entry.Text), Is.EqualTo(entry.Ids));
    }

    [TestCaseSource(typeof(TokenizerFixture), nameof(TokenizerFixture.CorpusCases))]
    public void DecodeRoundTrips(TokenizerFixture.Entry entry)
    {
        Assert.That(Gpt2Tokenizer.Default.Decode(entry.Ids), Is.EqualTo(entry.Text));
    }

    [TestCaseSource(typeof(TokenizerFixture), nameof(TokenizerFixture.CorpusCases))]
    public void StreamingDecodeEqualsWholeDecode(TokenizerFixture.Entry entry)
    {
        Assert.That(StreamingDecoderTests.DecodeOneByOne(Gpt2Tokenizer.Default, entry.Ids), Is.EqualTo(entry.Text));
    }

    [TestCaseSource(typeof(TokenizerFixture), nameof(TokenizerFixture.DecodeCaseData))]
    public void BrokenUtf8DecodesLikePythonReplace(TokenizerFixture.Entry entry)
    {
        var tokenizer = Gpt2Tokenizer.Default;
        Assert.Multiple(() =>
        {
            Assert.That(tokenizer.Decode(entry.Ids), Is.EqualTo(entry.Text), "whole");
            Assert.That(StreamingDecoderTests.DecodeOneByOne(tokenizer, entry.Ids), Is.EqualTo(entry.Text), "streaming");
        });
    }

    [Test]
    public void CorpusCoversWhatItClaims()
    {
        string all = string.Concat(TokenizerFixture.Corpus.Select(e => e.Text));
        Assert.Multiple(() =>
        {
            Assert.That(TokenizerFixture.Corpus, Has.Count.GreaterThan(100));
            foreach (string probe in new[] { "𝐀", "𝟏", "𠀀", "\u0085", "\ufeff", "\u00a0", "\u2028", "\u3000", "\u200d", "🏽", "'LL", "<|endoftext|>", "\x1f" })
                Assert.That(all, Does.Contain(probe), $"corpus lacks U+{char.ConvertToUtf32(probe, 0):X4}");
        });
    }
}
