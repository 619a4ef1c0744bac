using System.Text.Json;

namespace GptJx.Tokenization;

/// <summary>
/// Reads the two file layouts a model folder may ship: GPT-2's original
/// vocab.json + merges.txt, or a Hugging Face tokenizer.json.
/// </summary>
internal static class TokenizerFiles
{
    public const string VocabFileName = "vocab.json";
    public const string MergesFileName = "merges.txt";
    public const string TokenizerJsonFileName = "tokenizer.json";

    public static BpeVocabulary LoadVocabAndMerges(string vocabPath, string mergesPath)
    {
        RequireRegularFile(vocabPath);
        RequireRegularFile(mergesPath);
        Dictionary<string, int> vocab;
        try
        {
            using var stream = File.OpenRead(vocabPath);
            using var doc = JsonDocument.Parse(stream);
            vocab = ReadVocabObject(doc.RootElement, vocabPath, "the whole file");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{vocabPath}: not valid JSON ({ex.Message}).", ex);
        }

        var merges = new List<(string, string, string)>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(mergesPath))
        {
            lineNumber++;
            // The first line of GPT-2's file is a "#version: 0.2" header.
            if (lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal)) continue;
            if (line.Length == 0) continue;
            merges.Add(SplitMerge(line, $"{mergesPath} line {lineNumber}"));
        }

        return VocabularyBuilder.Build(vocab, vocabPath, merges, [], $"{vocabPath} + {MergesFileName}");
    }

    public static BpeVocabulary LoadTokenizerJson(string path)
    {
        RequireRegularFile(path);
        try
        {
            using var stream = File.OpenRead(path);
            using var doc = JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 256 });
            JsonElement root = doc.RootElement;
            RequireText(root, path);
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out JsonElement model) ||
                model.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path}: no \"model\" object; is this a Hugging Face tokenizer.json?");
            if (model.TryGetProperty("type", out JsonElement type) && type.ValueKind == JsonValueKind.String &&
                type.GetString() != "BPE")
                throw new InvalidDataException($"{path}: model.type is \"{type.GetString()}\"; only byte-level \"BPE\" is supported.");
            if (!model.TryGetProperty("vocab", out JsonElement vocabElement))
                throw new InvalidDataException($"{path}: model.vocab is missing.");
            if (!model.TryGetProperty("merges", out JsonElement mergesElement) || mergesElement.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{path}: model.merges is missing or not an array.");

            var vocab = ReadVocabObject(vocabElement, path, "model.vocab");
            var merges = new List<(string, string, string)>();
            int index = 0;
            foreach (JsonElement merge in mergesElement.EnumerateArray())
            {
                string where = $"{path} model.merges[{index++}]";
                // Older files write "left right", newer ones ["left", "right"].
                if (merge.ValueKind == JsonValueKind.String)
                    merges.Add(SplitMerge(merge.GetString()!, where));
                else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2 &&
                         merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
                    merges.Add((merge[0].GetString()!, merge[1].GetString()!, where));
                else
                    throw new InvalidDataException($"{where}: expected \"left right\" or [\"left\", \"right\"].");
            }

            var added = new List<(string, int)>();
            if (root.TryGetProperty("added_tokens", out JsonElement addedElement) && addedElement.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement token in addedElement.EnumerateArray())
                {
                    if (!token.TryGetProperty("id", out JsonElement id) || id.ValueKind != JsonValueKind.Number ||
                        !id.TryGetInt32(out int addedId) ||
                        !token.TryGetProperty("content", out JsonElement content) || content.ValueKind != JsonValueKind.String)
                        throw new InvalidDataException($"{path}: an added_tokens entry lacks an integer \"id\" or a string \"content\".");
                    added.Add((content.GetString()!, addedId));
                }
            }

            return VocabularyBuilder.Build(vocab, path, merges, added, path);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({ex.Message}).", ex);
        }
    }

    private static void RequireRegularFile(string path)
    {
        if (RegularFile.Problem(path) is { } problem) throw new InvalidDataException($"{path}: {problem}.");
    }

    /// <summary>Strings System.Text.Json cannot read as text (invalid UTF-8, unpaired surrogate escapes) are refused up front, named.</summary>
    private static void RequireText(JsonElement element, string path)
    {
        if (JsonText.FindInvalid(element) is { } bad)
            throw new InvalidDataException($"{path}: {bad.Describe()} is not valid text (invalid UTF-8 or an unpaired surrogate escape).");
    }

    private static Dictionary<string, int> ReadVocabObject(JsonElement element, string path, string what)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{path}: {what} must be a JSON object mapping token strings to ids.");
        RequireText(element, path);
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (JsonProperty entry in element.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id))
                throw new InvalidDataException($"{path}: the id of token '{entry.Name}' is not an integer.");
            if (!vocab.TryAdd(entry.Name, id))
                throw new InvalidDataException($"{path}: token '{entry.Name}' appears twice.");
        }
        return vocab;
    }

    private static (string, string, string) SplitMerge(string line, string where)
    {
        string[] parts = line.Split(' ');
        if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
            throw new InvalidDataException($"{where}: expected two tokens separated by one space, got '{line}'.");
        return (parts[0], parts[1], where);
    }
}
