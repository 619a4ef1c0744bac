using System.Globalization;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.RegularExpressions;
using GptJx.Cuda.Interop;

namespace GptJx.Cuda;

/// <summary>The PTX modules embedded in this assembly (compiled from kernels/*.cu).</summary>
public static partial class PtxResources
{
    private const string Prefix = "GptJx.Cuda.Kernels.";

    /// <summary>Module names, e.g. "attention_prefill", one per kernels/*.cu file.</summary>
    public static IReadOnlyList<string> Modules { get; } = typeof(PtxResources).Assembly.GetManifestResourceNames()
        .Where(n => n.StartsWith(Prefix, StringComparison.Ordinal) && n.EndsWith(".ptx", StringComparison.Ordinal))
        .Select(n => n[Prefix.Length..^4]).Order(StringComparer.Ordinal).ToArray();

    public static string Read(string module)
    {
        using var stream = typeof(PtxResources).Assembly.GetManifestResourceStream(Prefix + module + ".ptx")
            ?? throw new InvalidOperationException($"PTX module '{module}' is not embedded in {typeof(PtxResources).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream, Encoding.ASCII);
        return reader.ReadToEnd();
    }

    /// <summary>The kernel entry points a PTX text defines (its <c>.entry</c> names).</summary>
    public static IReadOnlyList<string> EntryPoints(string ptx) =>
        EntryRegex().Matches(ptx).Select(m => m.Groups[1].Value).ToArray();

    /// <summary>Each entry point with the byte size of each of its parameters, in order.</summary>
    public static IReadOnlyDictionary<string, int[]> ParameterSizes(string ptx) =>
        EntryRegex().Matches(ptx).ToDictionary(m => m.Groups[1].Value, m =>
        {
            var list = ptx[(m.Index + m.Length)..ptx.IndexOf(')', m.Index + m.Length)];
            return ParamRegex().Matches(list).Select(p =>
                int.Parse(p.Groups[2].Value, CultureInfo.InvariantCulture) / 8 * (p.Groups[3].Success ? int.Parse(p.Groups[3].Value, CultureInfo.InvariantCulture) : 1)).ToArray();
        });

    [GeneratedRegex(@"^\s*(?:\.visible\s+)?\.entry\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(", RegexOptions.Multiline)]
    private static partial Regex EntryRegex();

    [GeneratedRegex(@"\.param\s+(?:\.align\s+\d+\s+)?\.(u|s|b|f)(8|16|32|64)\s+[A-Za-z_$][\w$]*\s*(?:\[(\d+)\])?")]
    private static partial Regex ParamRegex();
}

/// <summary>Loads every embedded PTX module into the context (JIT log surfaced on failure) and finds kernels by name.</summary>
internal sealed unsafe class KernelCatalog : IDisposable
{
    private readonly List<CudaModuleHandle> _modules = new();
    private readonly Dictionary<string, CudaKernel> _kernels = new(StringComparer.Ordinal);

    public KernelCatalog(PrimaryContextHandle context)
    {
        foreach (var module in PtxResources.Modules)
        {
            var ptx = PtxResources.Read(module);
            var handle = Load(context, module, ptx);
            _modules.Add(handle);
            foreach (var (entry, parameters) in PtxResources.ParameterSizes(ptx))
            {
                var bytes = Encoding.ASCII.GetBytes(entry + "\0");
                IntPtr function;
                fixed (byte* name = bytes) CudaCheck.Driver(CudaDriver.cuModuleGetFunction(out function, handle.DangerousGetHandle(), name));
                _kernels[entry] = new CudaKernel(entry, function, parameters);
            }
        }
    }

    public CudaKernel this[string name] => _kernels.TryGetValue(name, out var k) ? k
        : throw new NotSupportedException($"CUDA kernel '{name}' is not among the embedded PTX entry points");

    private static CudaModuleHandle Load(PrimaryContextHandle context, string module, string ptx)
    {
        const int logSize = 16384;
        var image = Encoding.ASCII.GetBytes(ptx + "\0");
        var errorLog = new byte[logSize];
        var infoLog = new byte[logSize];
        var handle = new CudaModuleHandle(context);
        fixed (byte* img = image, err = errorLog, info = infoLog)
        {
            int* options = stackalloc int[4] { CudaDriver.JitErrorLogBuffer, CudaDriver.JitErrorLogBufferSizeBytes, CudaDriver.JitInfoLogBuffer, CudaDriver.JitInfoLogBufferSizeBytes };
            void** values = stackalloc void*[4] { err, (void*)logSize, info, (void*)logSize };
            var status = CudaDriver.cuModuleLoadDataEx(out var m, img, 4, options, values);
            if (status != 0)
            {
                var log = Encoding.ASCII.GetString(errorLog).TrimEnd('\0').Trim();
                throw CudaCheck.DriverError("cuModuleLoadDataEx", status, $"while JIT-compiling PTX module '{module}'" + (log.Length > 0 ? $": {log}" : ""));
            }
            handle.Set(m);
        }
        return handle;
    }

    public void Dispose()
    {
        foreach (var m in _modules) m.Dispose();
        _modules.Clear();
        _kernels.Clear();
    }
}

/// <summary>
/// Arguments of one kernel launch, by value (up to 16, each in an 8-byte slot; smaller values use the
/// low bytes), with the size each was given as, so a launch can be checked against the kernel's
/// PTX parameter list.
/// </summary>
internal unsafe struct KernelArgs
{
    private fixed ulong _values[16];
    private fixed byte _sizes[16];
    private int _count;

    public int Count => _count;

    public KernelArgs Ptr(ulong value) { Push(value, 8); return this; }
    public KernelArgs Int(int value) { Push((uint)value, 4); return this; }
    public KernelArgs Long(long value) { Push((ulong)value, 8); return this; }
    public KernelArgs Float(float value) { Push(BitConverter.SingleToUInt32Bits(value), 4); return this; }

    public int SizeOf(int index) => _sizes[index];

    private void Push(ulong value, byte size)
    {
        if (_count == 16) throw new InvalidOperationException("too many kernel arguments");
        _sizes[_count] = size;
        _values[_count++] = value;
    }

    internal ulong* Values => (ulong*)Unsafe.AsPointer(ref _values[0]);

    /// <summary>"8 4 4" for the sizes given.</summary>
    public string Describe()
    {
        var sizes = new int[_count];
        for (var i = 0; i < _count; i++) sizes[i] = _sizes[i];
        return string.Join(" ", sizes);
    }
}

internal readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public static Dim3 Of(long x, long y = 1, long z = 1)
    {
        if (x < 1 || y < 1 || z < 1 || x > int.MaxValue || y > 65535 || z > 65535)
            throw new ArgumentOutOfRangeException(nameof(x), $"launch grid ({x}, {y}, {z}) out of range");
        return new Dim3((uint)x, (uint)y, (uint)z);
    }
}

internal sealed unsafe class CudaKernel(string name, IntPtr function, int[] parameterSizes)
{
    public string Name { get; } = name;
    public IntPtr Function { get; } = function;
    /// <summary>Byte size of each parameter, from the PTX.</summary>
    public IReadOnlyList<int> ParameterSizes { get; } = parameterSizes;
    private int _dynamicSharedLimit = 48 * 1024;

    /// <summary>Allows launches with up to <paramref name="bytes"/> of dynamic shared memory (set once, before any capture).</summary>
    public void ReserveDynamicShared(int bytes)
    {
        if (bytes <= _dynamicSharedLimit) return;
        CudaCheck.Driver(CudaDriver.cuFuncSetAttribute(Function, CudaDriver.FuncAttrMaxDynamicSharedSizeBytes, bytes));
        _dynamicSharedLimit = bytes;
    }

    public void Launch(Dim3 grid, Dim3 block, int sharedBytes, CudaStream stream, KernelArgs args)
    {
        // The driver reads as many bytes per argument as the PTX says; a mismatch would pass garbage.
        var matches = args.Count == ParameterSizes.Count;
        for (var i = 0; matches && i < args.Count; i++) matches = args.SizeOf(i) == ParameterSizes[i];
        if (!matches)
            throw new ArgumentException($"kernel {Name} takes parameters of {string.Join(" ", ParameterSizes)} bytes; the launch passes {args.Describe()}");
        ReserveDynamicShared(sharedBytes);
        var values = args.Values;
        var pointers = stackalloc void*[Math.Max(1, args.Count)];
        for (var i = 0; i < args.Count; i++) pointers[i] = values + i;
        var status = CudaDriver.cuLaunchKernel(Function, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, (uint)sharedBytes, stream.Handle, pointers, null);
        stream.Launches++;
        if (status == 0 && stream.SynchronizeEachLaunch) status = stream.SynchronizeUnlessCapturing();
        if (status != 0) throw CudaCheck.DriverError("cuLaunchKernel", status, $"kernel {Name}, grid ({grid.X}, {grid.Y}, {grid.Z}), block ({block.X}, {block.Y}, {block.Z}), {sharedBytes} bytes shared");
    }
}
