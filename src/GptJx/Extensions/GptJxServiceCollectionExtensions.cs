using GptJx.Backends;
using GptJx.Backends.Cpu;
using GptJx.Serving;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;

namespace GptJx.Extensions;

/// <summary>Dependency-injection registration of a GPT-JX engine and its <see cref="IChatClient"/>.</summary>
public static class GptJxServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="InferenceEngine"/> that loads the checkpoint in
    /// <paramref name="modelDirectory"/> when first asked for (on the CPU unless
    /// <paramref name="backendFactory"/> gives another backend), and an <see cref="IChatClient"/> over it.
    /// The container disposes the engine, and with it the model, when it is disposed.
    /// </summary>
    public static IServiceCollection AddGptJx(this IServiceCollection services, string modelDirectory, EngineOptions? engineOptions = null,
        Func<IBackend>? backendFactory = null, GptJxChatClientOptions? chatOptions = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelDirectory);
        return services.AddGptJx(_ => InferenceEngine.Load(modelDirectory, backendFactory?.Invoke() ?? new CpuBackend(), engineOptions), chatOptions);
    }

    /// <summary>Registers the engine made by <paramref name="engineFactory"/> (a singleton the container disposes) and an <see cref="IChatClient"/> over it.</summary>
    public static IServiceCollection AddGptJx(this IServiceCollection services, Func<IServiceProvider, InferenceEngine> engineFactory, GptJxChatClientOptions? chatOptions = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(engineFactory);
        services.AddSingleton(engineFactory);
        services.AddSingleton(sp => new GptJxChatClient(sp.GetRequiredService<InferenceEngine>(), chatOptions));
        services.AddSingleton<IChatClient>(sp => sp.GetRequiredService<GptJxChatClient>());
        return services;
    }
}
