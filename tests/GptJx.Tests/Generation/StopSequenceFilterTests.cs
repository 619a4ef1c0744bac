using GptJx.Generation;

namespace GptJx.Tests.Generation;

public class StopSequenceFilterTests
{
    [Test]
    public void StopSequenceSplitAcrossPiecesIsNeverEmitted()
    {
        var filter = new StopSequenceFilter(["\n\nUser:"]);
        var emitted = string.Concat(new[] { "Hello", " there", "\n", "\n", "Us", "er:", " more" }.Select(filter.Push));
        Assert.That(emitted, Is.EqualTo("Hello there"));
        Assert.That(filter.Stopped, Is.True);
        Assert.That(filter.Push("after"), Is.Empty);
    }

    [Test]
    public void HeldBackTextIsReleasedWhenItTurnsOutNotToBeAStop()
    {
        var filter = new StopSequenceFilter(["END"]);
        Assert.That(filter.Push("the EN"), Is.EqualTo("the "));
        Assert.That(filter.Push("D"), Is.Empty);
        Assert.That(filter.Stopped, Is.True);

        var other = new StopSequenceFilter(["END"]);
        Assert.That(other.Push("the EN"), Is.EqualTo("the "));
        Assert.That(other.Push("ZYME"), Is.EqualTo("ENZYM"), "the final E might still start END");
        Assert.That(other.Push(" E"), Is.EqualTo("E "));
        Assert.That(other.Flush(), Is.EqualTo("E"));
    }

    [Test]
    public void EarliestOfSeveralStopsWins()
    {
        var filter = new StopSequenceFilter(["b", "xyz"]);
        Assert.That(filter.Push("aaxyzab"), Is.EqualTo("aa"));
    }

    [Test]
    public void WithoutStopsEverythingPassesThrough()
    {
        var filter = new StopSequenceFilter([]);
        Assert.That(filter.Push("abc"), Is.EqualTo("abc"));
        Assert.That(filter.Flush(), Is.Empty);
    }
}
