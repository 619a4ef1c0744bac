using System.Globalization;
using System.Text;

namespace GptJx.Tokenization;

/// <summary>The four classes of code point the GPT-2 pattern tells apart.</summary>
internal enum CodePointKind : byte
{
    /// <summary>\p{L}: general categories Lu, Ll, Lt, Lm, Lo.</summary>
    Letter,
    /// <summary>\p{N}: Nd, Nl, No.</summary>
    Number,
    /// <summary>\s as Python's `regex` module defines it for str patterns.</summary>
    Space,
    /// <summary>Everything else: punctuation, symbols, marks, controls, emoji.</summary>
    Other,
}

/// <summary>
/// Classifies whole code points, not UTF-16 code units, so that letters and
/// digits outside the Basic Multilingual Plane (𝐀, 𝟏, 𠀀) count as letters
/// and digits the way they do for the original encoder.
/// </summary>
/// <remarks>
/// Categories come from .NET's Unicode data (Unicode 16 in .NET 10). A `regex`
/// module built on a newer Unicode also knows the characters assigned since,
/// and an older one (as the original ran with) knows fewer; only such
/// newly assigned characters can classify differently. Every code point
/// assigned in both agrees (checked over the whole range against `regex`).
/// </remarks>
internal static class CodePointClass
{
    // One byte per BMP code point; astral code points are classified on demand
    // (they are rare, and a 1.1M-entry table would cost a megabyte for little).
    private static readonly CodePointKind[] Bmp = BuildBmpTable();

    public static CodePointKind Of(int codePoint) =>
        codePoint < 0x10000 ? Bmp[codePoint] : Classify(codePoint);

    /// <summary>
    /// Decodes the code point at <paramref name="index"/>. A lone surrogate
    /// counts as U+FFFD, which is also what its UTF-8 encoding becomes.
    /// </summary>
    public static CodePointKind At(ReadOnlySpan<char> text, int index, out int width, out int codePoint)
    {
        char c = text[index];
        if (!char.IsSurrogate(c))
        {
            width = 1;
            codePoint = c;
            return Bmp[c];
        }
        if (Rune.DecodeFromUtf16(text[index..], out Rune rune, out width) != System.Buffers.OperationStatus.Done)
            rune = Rune.ReplacementChar;
        codePoint = rune.Value;
        return Of(codePoint);
    }

    /// <summary>
    /// The Unicode White_Space property, which is what `regex` matches with
    /// \s. It is not .NET's char.IsWhiteSpace nor Python's str.isspace: the
    /// information separators U+001C..U+001F are not in it, and neither are
    /// U+180E, U+200B and U+FEFF (format characters).
    /// </summary>
    public static bool IsPatternWhiteSpace(int c) => c switch
    {
        >= 0x09 and <= 0x0D => true,
        0x20 or 0x85 or 0xA0 or 0x1680 => true,
        >= 0x2000 and <= 0x200A => true,
        0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        _ => false,
    };

    private static CodePointKind Classify(int codePoint)
    {
        if (IsPatternWhiteSpace(codePoint)) return CodePointKind.Space;
        // Surrogate code points have no category of their own worth using;
        // they never reach here from At(), which maps them to U+FFFD.
        if (codePoint is >= 0xD800 and <= 0xDFFF) return CodePointKind.Other;
        return CharUnicodeInfo.GetUnicodeCategory(codePoint) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or
            UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter or
            UnicodeCategory.OtherLetter => CodePointKind.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or
            UnicodeCategory.OtherNumber => CodePointKind.Number,
            _ => CodePointKind.Other,
        };
    }

    private static CodePointKind[] BuildBmpTable()
    {
        var table = new CodePointKind[0x10000];
        for (int c = 0; c < table.Length; c++) table[c] = Classify(c);
        return table;
    }
}
