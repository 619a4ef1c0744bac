namespace GptJx.Tensors;

/// <summary>Element types of weights and activations.</summary>
public enum DType
{
    F32,
    F16,
    BF16,
}

public static class DTypeExtensions
{
    public static int Size(this DType type) => type == DType.F32 ? 4 : 2;

    /// <summary>The names used by config.json / torch_dtype and the CLI.</summary>
    public static string Name(this DType type) => type switch
    {
        DType.F32 => "fp32",
        DType.F16 => "fp16",
        DType.BF16 => "bf16",
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Parses fp32/float32/float, fp16/float16/half, bf16/bfloat16.</summary>
    public static bool TryParse(string? text, out DType type)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "fp32": case "f32": case "float32": case "float": type = DType.F32; return true;
            case "fp16": case "f16": case "float16": case "half": type = DType.F16; return true;
            case "bf16": case "bfloat16": type = DType.BF16; return true;
            default: type = default; return false;
        }
    }
}
