using System.Text;

namespace GptJx.Generation;

/// <summary>
/// Holds back streamed text that might be the start of a stop sequence, so that a stop
/// sequence is never emitted, even partially, and text before it is never lost.
/// </summary>
internal sealed class StopSequenceFilter(IReadOnlyList<string> stops)
{
    private readonly StringBuilder _pending = new();

    public bool Stopped { get; private set; }

    /// <summary>Adds decoded text; returns what can safely be emitted now.</summary>
    public string Push(string text)
    {
        if (Stopped) return "";
        _pending.Append(text);
        if (stops.Count == 0) return Drain(_pending.Length);
        string pending = _pending.ToString();
        int stopAt = -1;
        foreach (var stop in stops)
        {
            int at = pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (stopAt < 0 || at < stopAt)) stopAt = at;
        }
        if (stopAt >= 0)
        {
            Stopped = true;
            var emitted = pending[..stopAt];
            _pending.Clear();
            return emitted;
        }
        return Drain(pending.Length - LongestStopPrefixAtEnd(pending));
    }

    /// <summary>Text still held back when generation ends for another reason.</summary>
    public string Flush() => Stopped ? "" : Drain(_pending.Length);

    private string Drain(int count)
    {
        var text = _pending.ToString(0, count);
        _pending.Remove(0, count);
        return text;
    }

    private int LongestStopPrefixAtEnd(string text)
    {
        int longest = 0;
        foreach (var stop in stops)
            for (int n = Math.Min(stop.Length - 1, text.Length); n > longest; n--)
                if (text.AsSpan(text.Length - n).SequenceEqual(stop.AsSpan(0, n))) { longest = n; break; }
        return longest;
    }
}
