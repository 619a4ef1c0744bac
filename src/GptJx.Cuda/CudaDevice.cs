using System.Text;
using GptJx.Cuda.Interop;

namespace GptJx.Cuda;

/// <summary>Whether a CUDA device can run the backend, and if not, why.</summary>
public enum CudaAvailability
{
    /// <summary>Driver, device, cuBLAS and compute capability are all there.</summary>
    Available,
    /// <summary>No CUDA driver library on this machine.</summary>
    NoDriver,
    /// <summary>A driver, but no device (CUDA_ERROR_NO_DEVICE or a count of 0).</summary>
    NoDevice,
    /// <summary>A device the backend cannot use: compute capability below 8.0.</summary>
    Unsupported,
    /// <summary>Something that should work does not: the driver fails to start, cuBLAS is missing, a call fails.</summary>
    Broken,
}

/// <summary>The outcome of <see cref="CudaDevice.Probe"/>: a status and one line saying what was found.</summary>
public readonly record struct CudaProbe(CudaAvailability Status, string Reason)
{
    public bool IsAvailable => Status == CudaAvailability.Available;
    /// <summary>No driver or no device: the machine simply has no GPU (the only case tests may skip).</summary>
    public bool IsAbsent => Status is CudaAvailability.NoDriver or CudaAvailability.NoDevice;
}

/// <summary>
/// Finds and describes CUDA devices without creating a context (so probing costs no context
/// start-up, and a backend retains its device's primary context exactly once).
/// </summary>
public static unsafe class CudaDevice
{
    /// <summary>Whether device 0 can run the backend; never throws.</summary>
    public static CudaProbe Probe()
    {
        try
        {
            if (!NativeLibraries.TryLoad(CudaDriver.Library, out _, out var driverError))
                return new(CudaAvailability.NoDriver, driverError!);
            var status = CudaDriver.cuInit(0);
            if (status != 0)
            {
                var (name, text) = CudaCheck.DescribeDriver(status);
                return status == 100
                    ? new(CudaAvailability.NoDevice, $"no CUDA device ({name}: {text})")
                    : new(CudaAvailability.Broken, $"cuInit failed: {name} ({status}): {text}{CudaCheck.DriverDetail()}");
            }
            CudaCheck.Driver(CudaDriver.cuDeviceGetCount(out var count));
            if (count == 0) return new(CudaAvailability.NoDevice, "no CUDA device (the driver reports 0 devices)");
            if (!NativeLibraries.TryLoad(CuBlas.Library, out _, out var blasError)) return new(CudaAvailability.Broken, blasError!);
            var info = Describe(0);
            if (info.Major < 8)
                return new(CudaAvailability.Unsupported,
                    $"{info.Name} has compute capability {info.Major}.{info.Minor}; the CUDA backend needs 8.0 or later (A100 and newer)");
            return new(CudaAvailability.Available, info.ToString());
        }
        catch (Exception e)
        {
            return new(CudaAvailability.Broken, e.Message.Split('\n')[0]);
        }
    }

    /// <summary>Device count after cuInit; throws a <see cref="CudaException"/> if the driver fails.</summary>
    public static int Count()
    {
        CudaCheck.Driver(CudaDriver.cuInit(0));
        CudaCheck.Driver(CudaDriver.cuDeviceGetCount(out var count));
        return count;
    }

    /// <summary>Name, compute capability, multiprocessors, driver version and total memory of one device (free memory unknown: -1).</summary>
    public static CudaDeviceInfo Describe(int ordinal)
    {
        var count = Count();
        if (ordinal < 0 || ordinal >= count)
            throw new ArgumentOutOfRangeException(nameof(ordinal), ordinal, $"there are {count} CUDA devices");
        CudaCheck.Driver(CudaDriver.cuDeviceGet(out var device, ordinal));
        var nameBytes = new byte[256];
        fixed (byte* p = nameBytes) CudaCheck.Driver(CudaDriver.cuDeviceGetName(p, nameBytes.Length, device));
        var name = Encoding.ASCII.GetString(nameBytes).TrimEnd('\0');
        CudaCheck.Driver(CudaDriver.cuDeviceGetAttribute(out var major, CudaDriver.AttrComputeCapabilityMajor, device));
        CudaCheck.Driver(CudaDriver.cuDeviceGetAttribute(out var minor, CudaDriver.AttrComputeCapabilityMinor, device));
        CudaCheck.Driver(CudaDriver.cuDeviceGetAttribute(out var sms, CudaDriver.AttrMultiprocessorCount, device));
        CudaCheck.Driver(CudaDriver.cuDriverGetVersion(out var driver));
        CudaCheck.Driver(CudaDriver.cuDeviceTotalMem(out var total, device));
        return new CudaDeviceInfo(ordinal, name, major, minor, driver, (long)total, -1, sms);
    }

    /// <summary>The device handle for an ordinal.</summary>
    internal static int Handle(int ordinal)
    {
        CudaCheck.Driver(CudaDriver.cuDeviceGet(out var device, ordinal));
        return device;
    }
}
