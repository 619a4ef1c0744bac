using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace GptJx.Cuda.Interop;

/// <summary>
/// Resolves the logical library names used by the bindings (<see cref="CudaDriver.Library"/>,
/// <see cref="CuBlas.Library"/>) to the real shared libraries, probing the sonames of
/// CUDA 13, 12 and 11 in that order. An environment variable names an explicit file instead
/// (GPTJX_CUDA_DRIVER_PATH, GPTJX_CUBLAS_PATH; a relative path is taken from the current
/// directory); when it is set, only that file is tried.
/// </summary>
internal static class NativeLibraries
{
    public const string DriverPathVariable = "GPTJX_CUDA_DRIVER_PATH";
    public const string CublasPathVariable = "GPTJX_CUBLAS_PATH";

    private static readonly object Gate = new();
    private static readonly Dictionary<string, (IntPtr Handle, string? Error)> Loaded = new();

#pragma warning disable CA2255 // the resolver must be registered before any binding is called, from a library
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Register() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);

    /// <summary>The file names tried, in order, for the CUDA driver API.</summary>
    public static IReadOnlyList<string> DriverCandidates(bool windows, string? overridePath) =>
        !string.IsNullOrWhiteSpace(overridePath) ? [overridePath]
        : windows ? ["nvcuda.dll"]
        : ["libcuda.so.1", "libcuda.so"];

    /// <summary>The file names tried, in order, for cuBLAS (newest toolkit first).</summary>
    public static IReadOnlyList<string> CublasCandidates(bool windows, string? overridePath) =>
        !string.IsNullOrWhiteSpace(overridePath) ? [overridePath]
        : windows ? ["cublas64_13.dll", "cublas64_12.dll", "cublas64_11.dll"]
        : ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11"];

    private static bool IsWindows => OperatingSystem.IsWindows();

    public static IReadOnlyList<string> Candidates(string logicalName) => logicalName switch
    {
        CudaDriver.Library => DriverCandidates(IsWindows, FullPath(DriverPathVariable)),
        CuBlas.Library => CublasCandidates(IsWindows, FullPath(CublasPathVariable)),
        _ => [],
    };

    private static string? FullPath(string variable) =>
        Environment.GetEnvironmentVariable(variable) is { Length: > 0 } path ? Path.GetFullPath(path) : null;

    /// <summary>Loads (once) the library behind a logical name; false with a one-line reason when none of its candidates loads.</summary>
    public static bool TryLoad(string logicalName, out IntPtr handle, out string? error)
    {
        lock (Gate)
        {
            if (!Loaded.TryGetValue(logicalName, out var entry))
            {
                entry = (IntPtr.Zero, null);
                var candidates = Candidates(logicalName);
                foreach (var name in candidates)
                {
                    if (NativeLibrary.TryLoad(name, out var h)) { entry = (h, null); break; }
                }
                if (entry.Handle == IntPtr.Zero)
                    entry = (IntPtr.Zero, NotFoundMessage(logicalName, candidates));
                Loaded[logicalName] = entry;
            }
            handle = entry.Handle;
            error = entry.Error;
            return handle != IntPtr.Zero;
        }
    }

    public static string NotFoundMessage(string logicalName, IReadOnlyList<string> candidates)
    {
        var what = logicalName == CudaDriver.Library ? "CUDA driver library" : "cuBLAS library";
        var variable = logicalName == CudaDriver.Library ? DriverPathVariable : CublasPathVariable;
        return candidates.Count == 1
            ? $"{what} {candidates[0]} not found (set {variable} to its path)"
            : $"{what} not found (tried {string.Join(", ", candidates)}; set {variable} to its path)";
    }

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (libraryName != CudaDriver.Library && libraryName != CuBlas.Library) return IntPtr.Zero;
        if (TryLoad(libraryName, out var handle, out var error)) return handle;
        throw new DllNotFoundException(error);
    }
}
