using GptJx.Tokenization;
using Microsoft.ML.Tokenizers;

namespace GptJx.Tests.Tokenization;

/// <summary>
/// Why Gpt2Tokenizer has its own pre-tokenizer: the GPT-2 tokenizer built
/// into Microsoft.ML.Tokenizers splits some text differently from the
/// original encoder. Its Regex works on UTF-16 code units, so a letter or
/// digit outside the BMP is "other" to it rather than \p{L} / \p{N}, and an
/// apostrophe after one joins it instead of starting a contraction:
/// "𝐀'll" is [𝐀'][ll] instead of [𝐀]['ll]. (It also always treats the text
/// "&lt;|endoftext|&gt;" as the special token, which the original never does.)
/// </summary>
public sealed class BuiltInPreTokenizerTests
{
    [Test]
    public void BuiltInGpt2TokenizerDiffersFromTheOriginalWhereOursDoesNot()
    {
        var builtIn = TiktokenTokenizer.CreateForModel("gpt2");
        var differing = TokenizerFixture.Corpus
            .Where(e => !builtIn.EncodeToIds(e.Text).SequenceEqual(e.Ids))
            .ToList();
        TestContext.Out.WriteLine("built-in tokenizer differs on: " + string.Join(", ", differing.Select(e => e.Name)));

        Assert.Multiple(() =>
        {
            Assert.That(differing, Is.Not.Empty, "if the built-in one became exact, this class could go");
            Assert.That(differing.Select(e => e.Name), Does.Contain("astral-then-contraction"));
            foreach (var entry in differing)
                Assert.That(Gpt2Tokenizer.Default.Encode(entry.Text), Is.EqualTo(entry.Ids), entry.Name);
        });
    }
}
