using System.Text.Json;

namespace GptJx;

/// <summary>Where a JSON document holds something that is not text.</summary>
/// <param name="Path">The string's path ("messages[0].content"), or for a property name the path of its object ("" at the top).</param>
/// <param name="InPropertyName">True when a property name, not a value, is the bad one.</param>
public readonly record struct JsonTextError(string Path, bool InPropertyName)
{
    /// <summary>"messages[0].content", "a property name in model.vocab", "a property name at the top level".</summary>
    public string Describe() => !InPropertyName ? Path : Path.Length == 0 ? "a property name at the top level" : $"a property name in {Path}";
}

/// <summary>
/// System.Text.Json accepts strings that are not text (invalid UTF-8 bytes, or an escaped
/// unpaired surrogate such as <c>"\ud800"</c>) and throws InvalidOperationException only when
/// one is read, with a message that names nothing. Documents from files and requests are checked
/// once, up front, so that the error can say where.
/// </summary>
public static class JsonText
{
    /// <summary>The first string or property name of <paramref name="element"/> that cannot be read as text, or null.</summary>
    public static JsonTextError? FindInvalid(JsonElement element) => Find(element, "");

    private static JsonTextError? Find(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                return IsText(element) ? null : new JsonTextError(path, false);
            case JsonValueKind.Array:
                int index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (item.ValueKind is JsonValueKind.String or JsonValueKind.Array or JsonValueKind.Object
                        && Find(item, $"{path}[{index}]") is { } error)
                        return error;
                    index++;
                }
                return null;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    string name;
                    try { name = property.Name; }
                    catch (InvalidOperationException) { return new JsonTextError(path, true); }
                    if (Find(property.Value, path.Length == 0 ? name : $"{path}.{name}") is { } error) return error;
                }
                return null;
            default:
                return null;
        }
    }

    private static bool IsText(JsonElement value)
    {
        try
        {
            value.GetString();
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
