namespace GptJx.Tokenization;

/// <summary>
/// Splits text into the pieces GPT-2's pattern
/// <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>
/// finds, with the semantics of Python's `regex` module over code points.
/// </summary>
/// <remarks>
/// Written out by hand rather than handed to System.Text.RegularExpressions:
/// .NET's Regex classifies UTF-16 code units, so a letter or digit outside the
/// BMP would fall into the "other" class and split differently. Every code
/// point is a letter, a number, white space or other, so exactly one branch
/// applies at each position and no branch can match the empty string:
/// <list type="number">
/// <item>an apostrophe followed by s, t, re, ve, m, ll or d (case-sensitive);</item>
/// <item>an optional single space, then a maximal run of letters, of numbers or of others;</item>
/// <item>a run of white space: all of it at the end of the text; otherwise all but
/// its last code point (which then leads the next piece), or, when the run is a
/// single code point, that one.</item>
/// </list>
/// </remarks>
internal ref struct Gpt2PreTokenizer
{
    private readonly ReadOnlySpan<char> _text;
    private int _position;

    public Gpt2PreTokenizer(ReadOnlySpan<char> text)
    {
        _text = text;
        _position = 0;
        Current = default;
    }

    /// <summary>The piece found by the last successful <see cref="MoveNext"/>.</summary>
    public Range Current { get; private set; }

    public bool MoveNext()
    {
        int start = _position;
        if (start >= _text.Length) return false;
        int end = PieceEnd(start);
        Current = start..end;
        _position = end;
        return true;
    }

    private readonly int PieceEnd(int start)
    {
        ReadOnlySpan<char> text = _text;
        if (text[start] == '\'')
        {
            int contraction = ContractionLength(text[(start + 1)..]);
            if (contraction > 0) return start + 1 + contraction;
        }

        CodePointKind kind = CodePointClass.At(text, start, out int width, out _);
        int runStart = start;
        if (text[start] == ' ' && start + 1 < text.Length)
        {
            // " ?X+": a single space joins the run of letters, numbers or
            // others that follows it.
            CodePointKind next = CodePointClass.At(text, start + 1, out _, out _);
            if (next != CodePointKind.Space)
            {
                kind = next;
                runStart = start + 1;
            }
        }

        if (kind != CodePointKind.Space)
            return RunEnd(runStart, kind);

        // "\s+(?!\S)|\s+": a whitespace run leaves its last code point to
        // the next piece when something other than white space follows, so
        // that " word" stays together.
        int runEnd = start + width;
        int lastStart = start;
        while (runEnd < text.Length)
        {
            CodePointKind k = CodePointClass.At(text, runEnd, out int w, out _);
            if (k != CodePointKind.Space) break;
            lastStart = runEnd;
            runEnd += w;
        }
        if (runEnd == text.Length || lastStart == start) return runEnd;
        return lastStart;
    }

    private readonly int RunEnd(int index, CodePointKind kind)
    {
        ReadOnlySpan<char> text = _text;
        while (index < text.Length)
        {
            if (CodePointClass.At(text, index, out int width, out _) != kind) break;
            index += width;
        }
        return index;
    }

    /// <summary>Length after the apostrophe of 's 't 're 've 'm 'll 'd, or 0.</summary>
    private static int ContractionLength(ReadOnlySpan<char> rest)
    {
        if (rest.IsEmpty) return 0;
        switch (rest[0])
        {
            case 's' or 't' or 'm' or 'd':
                return 1;
            case 'r' or 'v':
                return rest.Length > 1 && rest[1] == 'e' ? 2 : 0;
            case 'l':
                return rest.Length > 1 && rest[1] == 'l' ? 2 : 0;
            default:
                return 0;
        }
    }
}
