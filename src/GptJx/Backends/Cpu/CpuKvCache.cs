using System.Runtime.InteropServices;

namespace GptJx.Backends.Cpu;

/// <summary>
/// Keys and values in fp32, laid out [layer][slot][head][position][headDim]: one head's keys
/// (and values) are contiguous over positions, so attention streams them (320 bytes per
/// position) instead of striding across every head's. Native allocations are committed by
/// the OS page by page as positions are written, so a cache sized for the full context
/// costs memory only for what is used.
/// </summary>
internal sealed unsafe class CpuKvCache : IKvCache
{
    private readonly float*[] _keys, _values;

    public CpuKvCache(int layers, int slots, int maxPositions, int heads, int headDim)
    {
        Layers = layers;
        Slots = slots;
        MaxPositions = maxPositions;
        Heads = heads;
        HeadDim = headDim;
        _keys = new float*[layers];
        _values = new float*[layers];
        nuint bytes = (nuint)((long)slots * maxPositions * Width * sizeof(float));
        for (int l = 0; l < layers; l++)
        {
            _keys[l] = (float*)NativeMemory.AlignedAlloc(bytes, 64);
            _values[l] = (float*)NativeMemory.AlignedAlloc(bytes, 64);
        }
    }

    public int Layers { get; }
    public int Slots { get; }
    public int MaxPositions { get; }
    public int Heads { get; }
    public int HeadDim { get; }
    public int Width => Heads * HeadDim;

    public float* Key(int layer, int slot, int head, int position) => _keys[layer] + (((long)slot * Heads + head) * MaxPositions + position) * HeadDim;

    public float* Value(int layer, int slot, int head, int position) => _values[layer] + (((long)slot * Heads + head) * MaxPositions + position) * HeadDim;

    public void Dispose()
    {
        for (int l = 0; l < Layers; l++)
        {
            if (_keys[l] != null) NativeMemory.AlignedFree(_keys[l]);
            if (_values[l] != null) NativeMemory.AlignedFree(_values[l]);
            _keys[l] = _values[l] = null;
        }
    }
}
