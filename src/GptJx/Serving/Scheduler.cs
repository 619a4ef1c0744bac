using GptJx.Backends;
using GptJx.Model;

namespace GptJx.Serving;

/// <summary>
/// Plans one forward step over the active sequences (continuous batching):
/// first one decode row for every sequence whose prompt is in the cache, then prompt
/// chunks of sequences still prefilling, in admission order, while the step's prefill
/// budget lasts. Every chunk is min(PrefillChunk, tokens left) whatever else is in the
/// step, so a prompt is cut at the same places alone or among others, and one chunk
/// always fits: prefill always progresses, and decoding never waits for a long prompt.
/// </summary>
internal sealed class Scheduler
{
    private readonly int _prefillChunk;
    private readonly AlibiScaling? _alibiScaling;
    private readonly int[] _tokens;
    private readonly int[] _logitRows;
    private readonly EngineSequence[] _members;
    private readonly int[] _memberRows;
    private readonly int[] _memberLogitIndex;

    public Scheduler(int maxBatch, int prefillChunk, AlibiScaling? alibiScaling)
    {
        _prefillChunk = prefillChunk;
        _alibiScaling = alibiScaling;
        MaxRows = maxBatch + prefillChunk;
        _tokens = new int[MaxRows];
        _logitRows = new int[maxBatch];
        _members = new EngineSequence[maxBatch];
        _memberRows = new int[maxBatch];
        _memberLogitIndex = new int[maxBatch];
        Batch = new AttentionBatch(maxBatch);
    }

    /// <summary>Most rows of one step: every slot decoding plus one full prefill chunk.</summary>
    public int MaxRows { get; }

    public AttentionBatch Batch { get; }
    public ReadOnlySpan<int> Tokens => _tokens.AsSpan(0, Batch.TotalRows);
    public ReadOnlySpan<int> LogitRows => _logitRows.AsSpan(0, LogitCount);
    public int LogitCount { get; private set; }
    public int MemberCount { get; private set; }
    public int DecodeRows { get; private set; }
    public int PrefillRows { get; private set; }

    public EngineSequence Member(int i) => _members[i];

    /// <summary>New tokens <see cref="Member"/> i runs in this step.</summary>
    public int MemberRows(int i) => _memberRows[i];

    /// <summary>Index of member i's logits among the step's logit rows, or -1 (a prefill chunk that is not the prompt's last).</summary>
    public int MemberLogitIndex(int i) => _memberLogitIndex[i];

    /// <summary>Builds the step from <paramref name="active"/> (in admission order); false when there is nothing to run.</summary>
    public bool Plan(IReadOnlyList<EngineSequence> active)
    {
        Batch.Clear();
        MemberCount = LogitCount = DecodeRows = PrefillRows = 0;
        foreach (var s in active)
        {
            if (!s.Decoding) continue;
            _tokens[Batch.TotalRows] = s.Pending;
            Add(s, 1, logits: true);
            DecodeRows++;
        }
        int budget = _prefillChunk;
        foreach (var s in active)
        {
            if (s.Decoding) continue;
            int left = s.Prompt.Length - s.Cached;
            int chunk = Math.Min(_prefillChunk, left);
            if (chunk > budget) break;
            s.Prompt.AsSpan(s.Cached, chunk).CopyTo(_tokens.AsSpan(Batch.TotalRows));
            Add(s, chunk, logits: chunk == left);
            PrefillRows += chunk;
            budget -= chunk;
        }
        return MemberCount > 0;
    }

    private void Add(EngineSequence s, int rows, bool logits)
    {
        int keyLength = s.Cached + rows;
        int firstRow = Batch.TotalRows;
        Batch.Add(s.Slot, s.Cached, rows, _alibiScaling?.SlopeMultiplier(keyLength) ?? 1f);
        _members[MemberCount] = s;
        _memberRows[MemberCount] = rows;
        _memberLogitIndex[MemberCount] = logits ? LogitCount : -1;
        if (logits) _logitRows[LogitCount++] = firstRow + rows - 1;
        MemberCount++;
    }

    /// <summary>Forgets the step's members (so finished requests are not kept alive by the buffers).</summary>
    public void Reset()
    {
        Array.Clear(_members, 0, MemberCount);
        MemberCount = 0;
    }
}
