using System.Text;

namespace GptJx.Serving;

/// <summary>
/// How chat messages become a prompt for GPT-JX, a base language model with no chat
/// training: one line per message, "Role: text", and a final "Assistant:" for the model
/// to continue. Generation stops before the model starts another turn ("\nUser:" or
/// "\nSystem:"), and the leading space the model writes after "Assistant:" is dropped.
/// <code>
/// System: You are a helpful assistant.
/// User: What is the capital of France?
/// Assistant:
/// </code>
/// </summary>
public static class ChatPromptTemplate
{
    /// <summary>Texts that end the assistant's turn.</summary>
    public static IReadOnlyList<string> StopSequences { get; } = ["\nUser:", "\nSystem:"];

    /// <summary>Formats (role, text) messages; roles are OpenAI's ("system", "user", "assistant", ...).</summary>
    public static string Format(IEnumerable<(string Role, string Text)> messages)
    {
        var prompt = new StringBuilder();
        foreach (var (role, text) in messages)
            prompt.Append(RoleLabel(role)).Append(": ").Append(text.Trim()).Append('\n');
        return prompt.Append("Assistant:").ToString();
    }

    /// <summary>"system" -> "System", "user" -> "User", "assistant" -> "Assistant"; other roles capitalized as they are.</summary>
    public static string RoleLabel(string role) => role.ToLowerInvariant() switch
    {
        "system" or "developer" => "System",
        "user" => "User",
        "assistant" => "Assistant",
        "" => "User",
        _ => char.ToUpperInvariant(role[0]) + role[1..],
    };

    /// <summary>The request's stop sequences followed by the template's (without repeats).</summary>
    public static IReadOnlyList<string> WithTemplateStops(IEnumerable<string>? stops) =>
        (stops ?? []).Concat(StopSequences).Distinct(StringComparer.Ordinal).ToArray();
}

/// <summary>Drops the whitespace at the start of a streamed text, however it is split into pieces.</summary>
public sealed class LeadingWhitespaceTrimmer
{
    private bool _started;

    public string Push(string text)
    {
        if (_started || text.Length == 0) return text;
        var trimmed = text.TrimStart();
        _started = trimmed.Length > 0;
        return trimmed;
    }
}
