namespace GptJx.Tokenization;

/// <summary>
/// GPT-2's reversible mapping between bytes and printable characters.
/// vocab.json and merges.txt spell every token with these characters so that
/// the files hold no control characters or whitespace: printable Latin-1
/// bytes stand for themselves, the other 68 bytes get U+0100, U+0101, ... in
/// byte order (so the space byte 0x20 is 'Ġ', U+0120).
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly short[] CharToByte = BuildCharToByte();

    /// <summary>The character that spells <paramref name="b"/> in the files.</summary>
    public static char Char(byte b) => ByteToChar[b];

    /// <summary>The byte a file character stands for, or -1 when it is not one of the 256.</summary>
    public static int Byte(char c) => c < CharToByte.Length ? CharToByte[c] : -1;

    /// <summary>The file spelling of a token's bytes.</summary>
    public static string Spell(ReadOnlySpan<byte> bytes)
    {
        return string.Create(bytes.Length, bytes.ToArray(), static (span, data) =>
        {
            for (int i = 0; i < data.Length; i++) span[i] = ByteToChar[data[i]];
        });
    }

    /// <summary>
    /// The bytes a file spelling stands for, or null when a character is
    /// outside the alphabet (an added token written as plain text).
    /// </summary>
    public static byte[]? TryUnspell(string spelling)
    {
        var bytes = new byte[spelling.Length];
        for (int i = 0; i < spelling.Length; i++)
        {
            int b = Byte(spelling[i]);
            if (b < 0) return null;
            bytes[i] = (byte)b;
        }
        return bytes;
    }

    private static bool StandsForItself(int b) =>
        (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
            map[b] = StandsForItself(b) ? (char)b : (char)next++;
        return map;
    }

    private static short[] BuildCharToByte()
    {
        var map = new short[256 + 68];
        Array.Fill(map, (short)-1);
        for (int b = 0; b < 256; b++) map[ByteToChar[b]] = (short)b;
        return map;
    }
}
