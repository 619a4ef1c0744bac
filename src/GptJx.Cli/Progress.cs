namespace GptJx.Cli;

/// <summary>A one-line progress display on stderr, shown only when stderr is a terminal.</summary>
internal sealed class TerminalProgress(string label) : IProgress<double>
{
    private readonly bool _enabled = !Console.IsErrorRedirected;
    private int _lastPercent = -1;

    public void Report(double fraction)
    {
        if (!_enabled) return;
        int percent = (int)(Math.Clamp(fraction, 0, 1) * 100);
        if (percent == _lastPercent) return;
        _lastPercent = percent;
        Console.Error.Write($"\r{label} {percent,3}%");
        if (percent == 100) Console.Error.Write("\r" + new string(' ', label.Length + 5) + "\r");
    }
}
