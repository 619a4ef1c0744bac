using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace GptJx.Backends.Cpu;

/// <summary>
/// Causal ALiBi attention over the KV cache, in fp32. One work item is one (head, new token):
/// scores over every cached position up to the token's own, a max-subtracted softmax, then the
/// weighted sum of values. Items are ordered head-major and split into contiguous chunks, so a
/// worker streams one head's contiguous keys and values for many queries while they are in its cache. Score buffers are per worker and reused.
/// </summary>
internal sealed unsafe class AttentionJob : PoolJob
{
    private float[][] _scores;
    private CpuTensor? _qkv, _output;
    private CpuKvCache? _cache;
    private AttentionBatch? _batch;
    private float[]? _slopes;
    private int _layer;
    private float _scoreScale;

    public AttentionJob(int workers)
    {
        _scores = new float[workers][];
        for (int i = 0; i < workers; i++) _scores[i] = new float[256];
    }

    public void Run(WorkerPool pool, CpuTensor qkv, CpuKvCache cache, int layer, AttentionBatch batch, float[] slopes, float scoreScale, CpuTensor output)
    {
        int width = cache.Width;
        float[] rows = qkv.Data;

        // 1. Append the new keys and values to each sequence's cache slot.
        int maxKeys = 0;
        foreach (var s in batch.Active)
        {
            if (s.StartPosition + s.Length > cache.MaxPositions)
                throw new InvalidOperationException($"positions {s.StartPosition}..{s.StartPosition + s.Length - 1} exceed the cache's {cache.MaxPositions}");
            if ((uint)s.Slot >= (uint)cache.Slots)
                throw new InvalidOperationException($"slot {s.Slot} is outside the cache's {cache.Slots} slots");
            int headDim = cache.HeadDim;
            for (int i = 0; i < s.Length; i++)
            {
                var row = new ReadOnlySpan<float>(rows, (s.FirstRow + i) * 3 * width, 3 * width);
                for (int h = 0; h < cache.Heads; h++)
                {
                    row.Slice(width + h * headDim, headDim).CopyTo(new Span<float>(cache.Key(layer, s.Slot, h, s.StartPosition + i), headDim));
                    row.Slice(2 * width + h * headDim, headDim).CopyTo(new Span<float>(cache.Value(layer, s.Slot, h, s.StartPosition + i), headDim));
                }
            }
            maxKeys = Math.Max(maxKeys, s.StartPosition + s.Length);
        }
        for (int i = 0; i < _scores.Length; i++)
            if (_scores[i].Length < maxKeys) _scores[i] = new float[Math.Max(maxKeys, 2 * _scores[i].Length)];

        // 2. Each (head, row) attends over positions 0..its own.
        (_qkv, _cache, _layer, _batch, _slopes, _scoreScale, _output) = (qkv, cache, layer, batch, slopes, scoreScale, output);
        try { pool.Run(this); }
        finally { (_qkv, _cache, _batch, _slopes, _output) = (null, null, null, null, null); }
    }

    private int _chunks;

    public override int BeginRun(int workers) => _chunks = Math.Min(_batch!.TotalRows * _cache!.Heads, 16 * workers);

    public override void RunChunk(int chunk, int worker)
    {
        var cache = _cache!;
        var batch = _batch!;
        int width = cache.Width, headDim = cache.HeadDim, rowsTotal = batch.TotalRows;
        int items = rowsTotal * cache.Heads;
        var (start, end) = Share(items, chunk, _chunks);
        float[] rows = _qkv!.Data, outData = _output!.Data;
        float[] scores = _scores[worker];
        fixed (float* pRows = rows, pOut = outData, pScores = scores)
        for (int item = start; item < end; item++)
        {
            int h = item / rowsTotal, row = item % rowsTotal;
            var s = FindSequence(batch, row);
            int position = s.StartPosition + (row - s.FirstRow);
            float slope = _slopes![h] * s.AlibiScale;
            float* q = pRows + (long)row * 3 * width + h * headDim;
            int keys = position + 1;
            float* k = cache.Key(_layer, s.Slot, h, 0);
            float* v = cache.Value(_layer, s.Slot, h, 0);
            float* o = pOut + (long)row * width + h * headDim;
            if (headDim == 80 && Vector512.IsHardwareAccelerated) Head80(q, k, v, keys, position, slope, pScores, o);
            else HeadAny(q, k, v, headDim, keys, position, slope, scores.AsSpan(0, keys), o);
        }
    }

    /// <summary>Portable path for any head width.</summary>
    private void HeadAny(float* q, float* k, float* v, int headDim, int keys, int position, float slope, Span<float> sc, float* output)
    {
        var qs = new ReadOnlySpan<float>(q, headDim);
        for (int j = 0; j < keys; j++, k += headDim)
            sc[j] = TensorPrimitives.Dot(qs, new ReadOnlySpan<float>(k, headDim)) * _scoreScale - slope * (position - j);
        float max = TensorPrimitives.Max(sc);
        TensorPrimitives.Subtract(sc, max, sc);
        TensorPrimitives.Exp(sc, sc);
        float inv = 1f / TensorPrimitives.Sum(sc);
        var o = new Span<float>(output, headDim);
        o.Clear();
        for (int j = 0; j < keys; j++, v += headDim)
            TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(v, headDim), sc[j], o, o);
        TensorPrimitives.Multiply(o, inv, o);
    }

    /// <summary>
    /// Head width 80 (GPT-JX) with AVX-512: the query and the output accumulator stay in five
    /// registers each while the head's keys, then values, stream by.
    /// </summary>
    private void Head80(float* q, float* k, float* v, int keys, int position, float slope, float* sc, float* output)
    {
        var q0 = Vector512.Load(q); var q1 = Vector512.Load(q + 16); var q2 = Vector512.Load(q + 32);
        var q3 = Vector512.Load(q + 48); var q4 = Vector512.Load(q + 64);
        float scale = _scoreScale;
        float max = float.NegativeInfinity;
        for (int j = 0; j < keys; j++, k += 80)
        {
            var a = q0 * Vector512.Load(k);
            a = Vector512.FusedMultiplyAdd(q1, Vector512.Load(k + 16), a);
            a = Vector512.FusedMultiplyAdd(q2, Vector512.Load(k + 32), a);
            a = Vector512.FusedMultiplyAdd(q3, Vector512.Load(k + 48), a);
            a = Vector512.FusedMultiplyAdd(q4, Vector512.Load(k + 64), a);
            float score = Vector512.Sum(a) * scale - slope * (position - j);
            sc[j] = score;
            if (score > max) max = score;
        }
        var span = new Span<float>(sc, keys);
        TensorPrimitives.Subtract(span, max, span);
        TensorPrimitives.Exp(span, span);
        float inv = 1f / TensorPrimitives.Sum(span);
        Vector512<float> o0 = default, o1 = default, o2 = default, o3 = default, o4 = default;
        for (int j = 0; j < keys; j++, v += 80)
        {
            var p = Vector512.Create(sc[j]);
            o0 = Vector512.FusedMultiplyAdd(p, Vector512.Load(v), o0);
            o1 = Vector512.FusedMultiplyAdd(p, Vector512.Load(v + 16), o1);
            o2 = Vector512.FusedMultiplyAdd(p, Vector512.Load(v + 32), o2);
            o3 = Vector512.FusedMultiplyAdd(p, Vector512.Load(v + 48), o3);
            o4 = Vector512.FusedMultiplyAdd(p, Vector512.Load(v + 64), o4);
        }
        var scaleOut = Vector512.Create(inv);
        (o0 * scaleOut).Store(output); (o1 * scaleOut).Store(output + 16); (o2 * scaleOut).Store(output + 32);
        (o3 * scaleOut).Store(output + 48); (o4 * scaleOut).Store(output + 64);
    }

    private static SequenceSpan FindSequence(AttentionBatch batch, int row)
    {
        var sequences = batch.Sequences;
        for (int i = 0; i < batch.Count; i++)
            if (row < sequences[i].FirstRow + sequences[i].Length) return sequences[i];
        throw new InvalidOperationException($"row {row} belongs to no sequence of the batch");
    }
}
