namespace GptJx.Serving;

/// <summary>
/// The free slots of a multi-slot KV cache. A slot is reused as is: a new sequence writes
/// positions from 0 and attention never reads past a query's own position, so stale keys
/// and values of the previous owner are never seen. Used by the engine thread only.
/// </summary>
internal sealed class KvSlotPool
{
    private readonly Stack<int> _free;
    private readonly bool[] _inUse;

    public KvSlotPool(int slots)
    {
        _inUse = new bool[slots];
        _free = new Stack<int>(slots);
        for (int s = slots - 1; s >= 0; s--) _free.Push(s);
    }

    public int Capacity => _inUse.Length;

    public int InUse => _inUse.Length - _free.Count;

    public bool TryRent(out int slot)
    {
        if (!_free.TryPop(out slot)) return false;
        _inUse[slot] = true;
        return true;
    }

    public void Return(int slot)
    {
        if (!_inUse[slot]) throw new InvalidOperationException($"KV slot {slot} returned twice");
        _inUse[slot] = false;
        _free.Push(slot);
    }
}
