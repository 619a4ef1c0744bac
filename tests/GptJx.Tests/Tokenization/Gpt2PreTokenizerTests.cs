using GptJx.Tokenization;

namespace GptJx.Tests.Tokenization;

/// <summary>Pieces as Python's `regex` module splits them with GPT-2's pattern.</summary>
public sealed class Gpt2PreTokenizerTests
{
    private static string[] Split(string text)
    {
        var pieces = new List<string>();
        var splitter = new Gpt2PreTokenizer(text);
        while (splitter.MoveNext()) pieces.Add(text[splitter.Current]);
        return [.. pieces];
    }

    [TestCase("Hello world", new[] { "Hello", " world" })]
    [TestCase("  hello", new[] { " ", " hello" }, Description = "a space run leaves its last space to the word")]
    [TestCase("x   !  ?", new[] { "x", "  ", " !", " ", " ?" })]
    [TestCase("it's 'S 'll", new[] { "it", "'s", " '", "S", " '", "ll" }, Description = "contractions are lower-case only, and never take a leading space")]
    [TestCase("a\t\tb  ", new[] { "a", "\t", "\t", "b", "  " }, Description = "only a space joins the next word; trailing white space stays whole")]
    [TestCase("𝐀𝐁 𝟏𝟐!", new[] { "𝐀𝐁", " 𝟏𝟐", "!" }, Description = "letters and digits outside the BMP")]
    [TestCase("a\ufeffb \u0085c", new[] { "a", "\ufeff", "b", " ", "\u0085", "c" }, Description = "U+FEFF is not white space, U+0085 is")]
    [TestCase("x\u001fy", new[] { "x", "\u001f", "y" }, Description = "U+001F is not white space to `regex`")]
    [TestCase("", new string[0])]
    public void SplitsLikeTheOriginalPattern(string text, string[] expected)
    {
        Assert.That(Split(text), Is.EqualTo(expected));
    }

    [Test]
    public void PatternWhiteSpaceIsUnicodeWhiteSpace()
    {
        int[] expected = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
            0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000];
        var actual = Enumerable.Range(0, 0x110000).Where(CodePointClass.IsPatternWhiteSpace);
        Assert.That(actual, Is.EqualTo(expected));
    }
}
