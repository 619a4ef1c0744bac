namespace GptJx;

/// <summary>What kind of refusal an <see cref="InvalidArgumentException"/> is; hosts answer each kind their own way.</summary>
public enum ArgumentErrorCode
{
    /// <summary>The value is outside what the parameter allows.</summary>
    InvalidValue,

    /// <summary>The prompt leaves no room to generate within the context (or a request's sequence length).</summary>
    ContextLengthExceeded,
}

/// <summary>
/// A refused argument. <see cref="ArgumentException.ParamName"/> names the parameter as the library
/// spells it (<c>MaxNewTokens</c>, <c>device</c>), <see cref="Reason"/> says what is wrong in words
/// that follow the parameter's name, and <see cref="Code"/> classifies it. Hosts map these once:
/// the server to an HTTP error with its JSON field, the CLI to the option the user typed
/// (<see cref="MessageFor"/> spells the parameter their way).
/// </summary>
public sealed class InvalidArgumentException(string parameter, string reason, ArgumentErrorCode code = ArgumentErrorCode.InvalidValue)
    : ArgumentException(reason, parameter)
{
    public ArgumentErrorCode Code { get; } = code;

    /// <summary>What is wrong, worded to follow the parameter's name: "must be 1..1024 (got 0)".</summary>
    public string Reason { get; } = reason;

    /// <summary>"{parameter} {reason}", without <see cref="ArgumentException"/>'s " (Parameter '...')" suffix.</summary>
    public override string Message => MessageFor(ParamName!);

    /// <summary>The message with the parameter called <paramref name="name"/> (a CLI option, a JSON field).</summary>
    public string MessageFor(string name) => $"{name} {Reason}";
}
