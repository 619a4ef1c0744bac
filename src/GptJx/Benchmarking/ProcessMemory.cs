using System.Diagnostics;

namespace GptJx.Benchmarking;

/// <summary>Resident memory of this process: current and peak (Linux VmRSS / VmHWM; the working set elsewhere).</summary>
public static class ProcessMemory
{
    public static long ResidentBytes() => ReadStatus("VmRSS:") ?? Process.GetCurrentProcess().WorkingSet64;

    public static long PeakResidentBytes() => ReadStatus("VmHWM:") ?? Process.GetCurrentProcess().PeakWorkingSet64;

    /// <summary>Restarts the peak at the current resident size (Linux: clear_refs 5); false where unsupported.</summary>
    public static bool ResetPeak()
    {
        try
        {
            if (!OperatingSystem.IsLinux()) return false;
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    private static long? ReadStatus(string key)
    {
        try
        {
            if (!File.Exists("/proc/self/status")) return null;
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(key, StringComparison.Ordinal))
                    return long.Parse(line[key.Length..].Trim().Split(' ')[0]) * 1024;
        }
        catch (IOException) { }
        return null;
    }
}
