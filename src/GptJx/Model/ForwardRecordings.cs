using GptJx.Backends;

namespace GptJx.Model;

internal enum ForwardMode
{
    /// <summary>Run the ops now.</summary>
    Eager,
    /// <summary>Record the ops, then replay the recording.</summary>
    Record,
    /// <summary>Replay an earlier recording.</summary>
    Replay,
}

/// <summary>
/// Decides when a forward call runs eagerly, is recorded, or replays a recording, for
/// backends that can record (CUDA graphs). Decode steps repeat the same shape (one row per
/// sequence) on the same KV cache, so the first step of a shape runs eagerly (warming the
/// backend up), the second is recorded and later ones replay it. A few recent shapes are kept.
/// </summary>
internal sealed class ForwardRecordings(IForwardRecording recorder) : IDisposable
{
    private const int Capacity = 8;
    private readonly List<(Key Key, IDisposable? Recording)> _entries = [];
    private int _current = -1;

    private readonly record struct Key(IKvCache Cache, int Rows, int Sequences, int LogitRows);

    public IForwardRecording Recorder => recorder;

    /// <summary>Chooses how to run a call; only decode steps (one new token and one logit row per sequence) are recorded.</summary>
    public ForwardMode Decide(AttentionBatch batch, IKvCache cache, int logitRows)
    {
        _current = -1;
        if (batch.TotalRows != batch.Count || logitRows != batch.Count) return ForwardMode.Eager;
        var key = new Key(cache, batch.TotalRows, batch.Count, logitRows);
        _current = _entries.FindIndex(e => e.Key == key);
        if (_current >= 0) return _entries[_current].Recording is null ? ForwardMode.Record : ForwardMode.Replay;
        if (_entries.Count == Capacity)
        {
            _entries[0].Recording?.Dispose();
            _entries.RemoveAt(0);
        }
        _entries.Add((key, null));
        return ForwardMode.Eager;
    }

    /// <summary>Keeps the recording just made for the shape of the current call.</summary>
    public void Store(IDisposable recording) => _entries[_current] = (_entries[_current].Key, recording);

    /// <summary>Replays the current shape's recording with this call's inputs.</summary>
    public void Replay(ReadOnlySpan<int> ids, AttentionBatch batch, ReadOnlySpan<int> logitRows) =>
        recorder.Replay(_entries[_current].Recording!, ids, batch, logitRows);

    public void Dispose()
    {
        foreach (var e in _entries) e.Recording?.Dispose();
        _entries.Clear();
    }
}
