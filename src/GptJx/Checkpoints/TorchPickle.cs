using GptJx.Tensors;

namespace GptJx.Checkpoints;

/// <summary>A storage named by a persistent id: its bytes are the zip member <c>data/{Key}</c>.</summary>
/// <param name="DType">The element type, or null for a storage type this engine does not load.</param>
internal sealed record TorchStorage(string TypeName, DType? DType, string Key, string Location, long ElementCount);

/// <summary>What <c>torch._utils._rebuild_tensor_v2</c> would build, kept as a description.</summary>
internal sealed record TorchTensor(TorchStorage Storage, long StorageOffset, long[] Shape, long[] Stride);

/// <summary>A global the unpickler allows, standing on the stack as a plain value.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    public string FullName => $"{Module}.{Name}";
}

/// <summary>An ordered dict or <c>collections.OrderedDict</c> as the unpickler builds it.</summary>
internal sealed class PickleDict
{
    public List<KeyValuePair<object, object>> Items { get; } = [];
}

/// <summary>Python's None.</summary>
internal sealed class PickleNone
{
    public static readonly PickleNone Instance = new();
    private PickleNone() { }
}

/// <summary>
/// The globals a PyTorch state dict pickle may name, and nothing else. Storage
/// classes are data-type tags, never called; the two callables only build
/// descriptions (a dict, a <see cref="TorchTensor"/>). So unpickling a file can
/// never run code, whatever it contains.
/// </summary>
internal static class TorchPickleGlobals
{
    public const string OrderedDict = "collections.OrderedDict";
    public const string RebuildTensorV2 = "torch._utils._rebuild_tensor_v2";
    public const string RebuildParameter = "torch._utils._rebuild_parameter";

    private static readonly Dictionary<string, DType?> StorageTypes = new(StringComparer.Ordinal)
    {
        ["torch.FloatStorage"] = DType.F32,
        ["torch.HalfStorage"] = DType.F16,
        ["torch.BFloat16Storage"] = DType.BF16,
        // Harmless type tags of tensors we cannot load: recognised so that the
        // error names the tensor and its type rather than calling the file malicious.
        ["torch.DoubleStorage"] = null,
        ["torch.LongStorage"] = null,
        ["torch.IntStorage"] = null,
        ["torch.ShortStorage"] = null,
        ["torch.CharStorage"] = null,
        ["torch.ByteStorage"] = null,
        ["torch.BoolStorage"] = null,
        ["torch.UntypedStorage"] = null,
        ["torch.storage.UntypedStorage"] = null,
    };

    public static bool IsAllowed(string fullName) =>
        fullName is OrderedDict or RebuildTensorV2 or RebuildParameter || StorageTypes.ContainsKey(fullName);

    public static bool IsStorageType(string fullName, out DType? dtype) => StorageTypes.TryGetValue(fullName, out dtype);
}
