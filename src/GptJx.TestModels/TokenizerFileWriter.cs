using System.Text;
using GptJx.Tokenization;

namespace GptJx.TestModels;

/// <summary>
/// Writes vocab.json and merges.txt in the exact format of GPT-2's original
/// encoder.json and vocab.bpe (Python's json.dumps defaults: ", " and ": "
/// separators, ASCII-only with lower-case \u escapes, entries in id order, no
/// final newline; a "#version: 0.2" header, one "left right" merge a line),
/// so that the embedded ranks reproduce the original files byte for byte.
/// </summary>
public static class TokenizerFileWriter
{
    /// <summary>
    /// Writes vocab.json and merges.txt for the tokenizer's vocabulary; for GPT-2 they are
    /// byte-identical to the original files.
    /// </summary>
    public static void WriteFiles(this Gpt2Tokenizer tokenizer, string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var vocab = tokenizer.Vocabulary;
        Directory.CreateDirectory(directory);
        var utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
        File.WriteAllText(Path.Combine(directory, TokenizerFiles.VocabFileName), VocabJson(vocab), utf8);
        File.WriteAllText(Path.Combine(directory, TokenizerFiles.MergesFileName), MergesText(vocab), utf8);
    }

    private static string Spelling(BpeVocabulary vocab, int id)
    {
        if (!vocab.IsSpecial[id]) return ByteLevelAlphabet.Spell(vocab.TokenBytes[id]);
        foreach (var (content, specialId) in vocab.SpecialTokens)
            if (specialId == id) return content;
        throw new InvalidOperationException($"special token {id} has no content");
    }

    private static string VocabJson(BpeVocabulary vocab)
    {
        var sb = new StringBuilder(1 << 20);
        sb.Append('{');
        for (int id = 0; id < vocab.Count; id++)
        {
            if (id > 0) sb.Append(", ");
            AppendJsonString(sb, Spelling(vocab, id));
            sb.Append(": ").Append(id);
        }
        return sb.Append('}').ToString();
    }

    private static string MergesText(BpeVocabulary vocab)
    {
        var sb = new StringBuilder(1 << 19);
        sb.Append("#version: 0.2\n");
        for (int rank = 0; rank < vocab.MergeLeft.Length; rank++)
        {
            sb.Append(Spelling(vocab, vocab.MergeLeft[rank])).Append(' ')
              .Append(Spelling(vocab, vocab.MergeRight[rank])).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>A JSON string literal as Python's json.dumps(ensure_ascii=True) writes it.</summary>
    private static void AppendJsonString(StringBuilder sb, string value)
    {
        sb.Append('"');
        foreach (char c in value)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || c > 0x7E) sb.Append("\\u").Append(((int)c).ToString("x4"));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
