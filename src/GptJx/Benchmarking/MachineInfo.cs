using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace GptJx.Benchmarking;

/// <summary>Facts about the machine and the engine for benchmark reports.</summary>
public static class MachineInfo
{
    public static string CpuModel()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                    if (line.StartsWith("model name", StringComparison.Ordinal))
                        return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    public static string SimdLevel()
    {
        var parts = new List<string>();
        if (Avx512F.IsSupported) parts.Add("AVX-512F");
        if (Avx512BW.IsSupported) parts.Add("AVX-512BW");
        if (Avx512Vbmi.IsSupported) parts.Add("AVX-512VBMI");
        if (parts.Count == 0 && Avx2.IsSupported) parts.Add("AVX2");
        if (Fma.IsSupported) parts.Add("FMA");
        if (parts.Count == 0) parts.Add(Vector128.IsHardwareAccelerated ? "128-bit SIMD" : "scalar");
        parts.Add($"Vector512 {(Vector512.IsHardwareAccelerated ? "accelerated" : "not accelerated")}");
        return string.Join(", ", parts);
    }

    public static string EngineVersion() =>
        typeof(MachineInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(MachineInfo).Assembly.GetName().Version?.ToString() ?? "unknown";

    public static double TotalMemoryGB() => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 1e9;
}
