using GptJx.Tensors;

namespace GptJx.Model;

/// <summary>ALiBi head slopes: the published formula and the check of stored slopes against it.</summary>
public static class Alibi
{
    /// <summary>
    /// Slopes for <paramref name="heads"/> heads: 2^(-8(h+1)/H) when H is a power of two;
    /// otherwise the P = 2^floor(log2 H) slopes followed by every other slope of the 2P-head list.
    /// </summary>
    public static float[] Slopes(int heads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(heads, 1);
        int p = 1 << (int)Math.Floor(Math.Log2(heads));
        var slopes = new List<double>(PowerOfTwoSlopes(p));
        if (p != heads)
        {
            double[] doubled = PowerOfTwoSlopes(2 * p);
            for (int i = 0; slopes.Count < heads; i += 2) slopes.Add(doubled[i]);
        }
        return slopes.Select(s => (float)s).ToArray();
    }

    private static double[] PowerOfTwoSlopes(int n) =>
        Enumerable.Range(0, n).Select(h => Math.Pow(2, -8.0 * (h + 1) / n)).ToArray();

    /// <summary>
    /// Relative tolerance for stored slopes: the rounding of their storage type
    /// (bf16 keeps 8 significant bits, fp16 11), with a little headroom.
    /// </summary>
    public static double Tolerance(DType storage) => storage switch
    {
        DType.BF16 => 1.0 / 128,
        DType.F16 => 1.0 / 1024,
        _ => 1e-6,
    };
}
