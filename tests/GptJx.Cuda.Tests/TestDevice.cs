using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using GptJx.Cuda;

namespace GptJx.Cuda.Tests;

/// <summary>
/// Chooses, once per test process and before any CUDA call, the CUDA driver the GPU tests run on:
/// GPTJX_CUDA_DRIVER_PATH when it is set; else this machine's driver when it has a device; else the
/// emulated device (tools/cuda-emulator) that the test project builds beside the tests. GPU tests skip
/// only when there is no driver or no device at all, and GPTJX_REQUIRE_GPU=1 turns that skip into a
/// failure; any other failure to start the device fails them.
/// </summary>
internal static unsafe class TestDevice
{
    public const string RequireVariable = "GPTJX_REQUIRE_GPU";

    public static string EmulatorDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "cuda-emulator");

    /// <summary>Whether the tests run on the emulated device.</summary>
    public static bool IsEmulated { get; private set; }

    private static readonly Lazy<CudaProbe> Probed = new(CudaDevice.Probe);

    /// <summary>The probe of device 0 with the chosen driver.</summary>
    public static CudaProbe Probe => Probed.Value;

#pragma warning disable CA2255 // the driver must be chosen before any test loads one
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Choose()
    {
        var emulatedDriver = Path.Combine(EmulatorDirectory, "libcuda.so.1");
        var chosen = Environment.GetEnvironmentVariable("GPTJX_CUDA_DRIVER_PATH");
        if (string.IsNullOrEmpty(chosen) && !SystemDriverHasDevice() && File.Exists(emulatedDriver))
        {
            Environment.SetEnvironmentVariable("GPTJX_CUDA_DRIVER_PATH", emulatedDriver);
            Environment.SetEnvironmentVariable("GPTJX_CUBLAS_PATH", Path.Combine(EmulatorDirectory, "libcublas.so"));
            chosen = emulatedDriver;
        }
        IsEmulated = !string.IsNullOrEmpty(chosen) && NativeLibrary.TryLoad(chosen, out var h) && NativeLibrary.TryGetExport(h, "gptjx_emu_error_detail", out _);
    }

    /// <summary>Skips (no driver or no device, unless GPTJX_REQUIRE_GPU=1) or fails (anything else) unless a device is usable.</summary>
    public static void Require()
    {
        var p = Probe;
        if (p.IsAvailable) return;
        if (!p.IsAbsent) Assert.Fail($"the CUDA device is not usable ({p.Status}): {p.Reason}");
        if (Environment.GetEnvironmentVariable(RequireVariable) == "1") Assert.Fail($"no CUDA device, and {RequireVariable}=1 requires one: {p.Reason}");
        Assert.Ignore($"no CUDA device: {p.Reason}");
    }

    /// <summary>A counter of the emulated driver (see tools/cuda-emulator/driver/api.cpp), e.g. "primary_context_retained".</summary>
    public static long EmulatorCounter(string name)
    {
        if (!IsEmulated) throw new InvalidOperationException("not running on the emulated device");
        var handle = NativeLibrary.Load(Environment.GetEnvironmentVariable("GPTJX_CUDA_DRIVER_PATH")!);
        var counter = (delegate* unmanaged<byte*, long>)NativeLibrary.GetExport(handle, "gptjx_emu_counter");
        var bytes = System.Text.Encoding.ASCII.GetBytes(name + "\0");
        fixed (byte* p = bytes) return counter(p);
    }

    /// <summary>Whether the machine's own CUDA driver (libcuda.so.1 / nvcuda.dll) reports a device.</summary>
    private static bool SystemDriverHasDevice()
    {
        var name = OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";
        if (!NativeLibrary.TryLoad(name, out var driver)) return false;
        try
        {
            if (!NativeLibrary.TryGetExport(driver, "cuInit", out var init) || !NativeLibrary.TryGetExport(driver, "cuDeviceGetCount", out var getCount))
                return false;
            if (((delegate* unmanaged<uint, int>)init)(0) != 0) return false;
            int count;
            return ((delegate* unmanaged<int*, int>)getCount)(&count) == 0 && count > 0;
        }
        finally { NativeLibrary.Free(driver); }
    }
}
