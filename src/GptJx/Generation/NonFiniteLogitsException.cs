using System.Runtime.InteropServices;
using GptJx.Tensors;

namespace GptJx.Generation;

/// <summary>
/// The model's logits came out NaN or infinite (its activations overflowed on these tokens), so
/// no token can be chosen from them. Raised instead of picking a token from garbage.
/// </summary>
public sealed class NonFiniteLogitsException(string message) : Exception(message)
{
    /// <summary>Throws when any of <paramref name="logits"/> is NaN or infinite, naming the first (and the position, if given).</summary>
    public static void ThrowIfAny(ReadOnlySpan<float> logits, int? position = null)
    {
        long id = FiniteScan.FirstNonFinite(MemoryMarshal.AsBytes(logits), DType.F32);
        if (id < 0) return;
        string at = position is int p ? $" at position {p}" : "";
        throw new NonFiniteLogitsException(
            $"the model's logits{at} are not finite (token id {id} has {logits[(int)id]}): its activations overflowed on this input");
    }

    /// <summary>
    /// A token a backend picked where the logits are: an id outside the vocabulary is how it
    /// reports logits that were not finite (see <see cref="Backends.IDeviceTokenPicker"/>).
    /// </summary>
    public static int CheckPicked(int token, int vocabularySize) =>
        (uint)token < (uint)vocabularySize
            ? token
            : throw new NonFiniteLogitsException($"the model's logits are not finite (the backend picked no token, id {token}): its activations overflowed on this input");
}
