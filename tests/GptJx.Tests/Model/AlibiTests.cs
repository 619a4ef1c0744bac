using GptJx.Model;

namespace GptJx.Tests.Model;

public class AlibiTests
{
    [Test]
    public void PowerOfTwoHeads()
    {
        var s = Alibi.Slopes(8);
        Assert.That(s, Is.EqualTo(new[] { 0.5f, 0.25f, 0.125f, 0.0625f, 0.03125f, 0.015625f, 0.0078125f, 0.00390625f }));
        Assert.That(Alibi.Slopes(32)[0], Is.EqualTo(MathF.Pow(2, -0.25f)).Within(1e-7));
        Assert.That(Alibi.Slopes(32)[31], Is.EqualTo(1f / 256).Within(1e-9));
    }

    [Test]
    public void NonPowerOfTwoHeadsTakeEveryOtherSlopeOfTheDoubledList()
    {
        // 6 heads: the 4-head slopes 2^-2, 2^-4, 2^-6, 2^-8, then slopes 0 and 2 of the 8-head list: 2^-1, 2^-3.
        Assert.That(Alibi.Slopes(6), Is.EqualTo(new[] { 0.25f, 0.0625f, 0.015625f, 0.00390625f, 0.5f, 0.125f }));
        // 12 heads: the 8-head list, then 16-head slopes 0, 2, 4, 6: 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5.
        var twelve = Alibi.Slopes(12);
        Assert.That(twelve[..8], Is.EqualTo(Alibi.Slopes(8)));
        Assert.That(twelve[8..], Is.EqualTo(new[] { MathF.Pow(2, -0.5f), MathF.Pow(2, -1.5f), MathF.Pow(2, -2.5f), MathF.Pow(2, -3.5f) }).Within(1e-7));
    }
}
