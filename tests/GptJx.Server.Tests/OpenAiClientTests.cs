using System.Text;
using GptJx.Extensions;
using GptJx.Server;
using GptJx.Serving;
using Microsoft.Extensions.AI;
using OpenAI.Chat;
using static GptJxServerTests.ServerFixture;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;
using AiChatRole = Microsoft.Extensions.AI.ChatRole;
using AiFinish = Microsoft.Extensions.AI.ChatFinishReason;
using OpenAiFinish = OpenAI.Chat.ChatFinishReason;

namespace GptJxServerTests;

/// <summary>The official OpenAI .NET client and Microsoft.Extensions.AI.OpenAI against the server.</summary>
public class OpenAiClientTests
{
    private static readonly OpenAI.Chat.ChatMessage[] Conversation =
    [
        new SystemChatMessage("You are a terse assistant."),
        new UserChatMessage("What is the capital of France?"),
    ];

    private static readonly AiChatMessage[] AiConversation =
    [
        new(AiChatRole.System, "You are a terse assistant."),
        new(AiChatRole.User, "What is the capital of France?"),
    ];

    /// <summary>What the in-process chat client answers: the reference for every HTTP path.</summary>
    private static Task<ChatResponse> InProcess(ChatOptions options) => new GptJxChatClient(Engine).GetResponseAsync(AiConversation, options);

    [Test]
    public async Task ChatCompletionMatchesTheInProcessClient()
    {
        var chat = OpenAi().GetChatClient("gpt-jx");
        ChatCompletion completion = await chat.CompleteChatAsync(Conversation, new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0 });
        var expected = await InProcess(new ChatOptions { MaxOutputTokens = 12, Temperature = 0 });

        Assert.That(completion.Content.Single().Text, Is.EqualTo(expected.Text));
        Assert.That(completion.Role, Is.EqualTo(ChatMessageRole.Assistant));
        Assert.That(completion.FinishReason, Is.EqualTo(expected.FinishReason == AiFinish.Length ? OpenAiFinish.Length : OpenAiFinish.Stop));
        Assert.That(completion.Usage.InputTokenCount, Is.EqualTo(expected.Usage!.InputTokenCount));
        Assert.That(completion.Usage.OutputTokenCount, Is.EqualTo(expected.Usage.OutputTokenCount));
        Assert.That(completion.Usage.TotalTokenCount, Is.EqualTo(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount));
        Assert.That(completion.Model, Is.EqualTo("gpt-jx"));
    }

    [Test]
    public async Task StreamingChatEqualsNonStreamingAndReportsUsage()
    {
        var chat = OpenAi().GetChatClient("gpt-jx");
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 16, Temperature = 0.8f, TopP = 0.95f, Seed = 1234 };
        ChatCompletion whole = await chat.CompleteChatAsync(Conversation, options);

        var text = new StringBuilder();
        OpenAiFinish? finish = null;
        ChatTokenUsage? usage = null;
        int updates = 0;
        await foreach (var update in chat.CompleteChatStreamingAsync(Conversation, new ChatCompletionOptions { MaxOutputTokenCount = 16, Temperature = 0.8f, TopP = 0.95f, Seed = 1234 }))
        {
            updates++;
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }
        Assert.That(text.ToString(), Is.EqualTo(whole.Content.Single().Text), "seeded sampling gives the same text streamed or not");
        Assert.That(updates, Is.GreaterThan(2), "tokens arrive as separate events");
        Assert.That(finish, Is.EqualTo(whole.FinishReason));
        Assert.That(usage, Is.Not.Null, "the client asks for usage in the stream and gets it");
        Assert.That(usage!.OutputTokenCount, Is.EqualTo(whole.Usage.OutputTokenCount));
        Assert.That(usage.InputTokenCount, Is.EqualTo(whole.Usage.InputTokenCount));
    }

    [Test]
    public async Task ChatLogprobsAndStopSequences()
    {
        var chat = OpenAi().GetChatClient("gpt-jx");
        ChatCompletion withLogprobs = await chat.CompleteChatAsync(Conversation, new ChatCompletionOptions
        {
            MaxOutputTokenCount = 6, Temperature = 0, IncludeLogProbabilities = true, TopLogProbabilityCount = 3,
        });
        Assert.That(withLogprobs.ContentTokenLogProbabilities, Has.Count.EqualTo(withLogprobs.Usage.OutputTokenCount));
        foreach (var lp in withLogprobs.ContentTokenLogProbabilities)
        {
            Assert.That(lp.LogProbability, Is.LessThanOrEqualTo(0));
            Assert.That(lp.TopLogProbabilities, Has.Count.EqualTo(3));
            Assert.That(lp.TopLogProbabilities[0].LogProbability, Is.EqualTo(lp.LogProbability).Within(1e-6), "greedy takes the most likely token");
        }

        // A stop sequence taken from the greedy text cuts it there.
        string full = withLogprobs.Content.Single().Text;
        Assert.That(full.Length, Is.GreaterThan(4), "6 greedy tokens of the test model give more than 4 characters to cut");
        string stop = full.Substring(full.Length / 2, 2);
        ChatCompletion stopped = await chat.CompleteChatAsync(Conversation, new ChatCompletionOptions { MaxOutputTokenCount = 6, Temperature = 0, StopSequences = { stop } });
        Assert.That(stopped.FinishReason, Is.EqualTo(OpenAiFinish.Stop));
        Assert.That(stopped.Content.Single().Text, Is.EqualTo(full[..full.IndexOf(stop, StringComparison.Ordinal)].TrimStart()));
    }

    [Test]
    public async Task MicrosoftExtensionsAiOverOpenAiMatchesTheInProcessClient()
    {
        IChatClient client = OpenAi().GetChatClient("gpt-jx").AsIChatClient();
        var options = new ChatOptions { MaxOutputTokens = 10, Temperature = 0 };
        var remote = await client.GetResponseAsync(AiConversation, options);
        var local = await InProcess(new ChatOptions { MaxOutputTokens = 10, Temperature = 0 });
        Assert.That(remote.Text, Is.EqualTo(local.Text));
        Assert.That(remote.FinishReason, Is.EqualTo(local.FinishReason));
        Assert.That(remote.Usage!.OutputTokenCount, Is.EqualTo(local.Usage!.OutputTokenCount));
        Assert.That(remote.Usage.InputTokenCount, Is.EqualTo(local.Usage.InputTokenCount));

        var streamed = new StringBuilder();
        AiFinish? finish = null;
        await foreach (var update in client.GetStreamingResponseAsync(AiConversation, new ChatOptions { MaxOutputTokens = 10, Temperature = 0 }))
        {
            streamed.Append(update.Text);
            finish ??= update.FinishReason;
        }
        Assert.That(streamed.ToString(), Is.EqualTo(local.Text));
        Assert.That(finish, Is.EqualTo(local.FinishReason));
    }

    [Test]
    public async Task InProcessStreamingMatchesAndCancels()
    {
        var client = new GptJxChatClient(Engine);
        var expected = await InProcess(new ChatOptions { MaxOutputTokens = 10, Temperature = 0 });
        var text = new StringBuilder();
        UsageDetails? usage = null;
        AiFinish? finish = null;
        await foreach (var update in client.GetStreamingResponseAsync(AiConversation, new ChatOptions { MaxOutputTokens = 10, Temperature = 0 }))
        {
            text.Append(update.Text);
            finish ??= update.FinishReason;
            usage ??= update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details;
        }
        Assert.That(text.ToString(), Is.EqualTo(expected.Text));
        Assert.That(finish, Is.EqualTo(AiFinish.Length));
        Assert.That(usage!.OutputTokenCount, Is.EqualTo(10));
        Assert.That(client.GetService(typeof(ChatClientMetadata)), Is.InstanceOf<ChatClientMetadata>());
        Assert.That(client.GetService(typeof(InferenceEngine)), Is.SameAs(Engine));

        using var cts = new CancellationTokenSource();
        long cancelledBefore = Engine.GetStatistics().CancelledRequests;
        Assert.CatchAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync(AiConversation, new ChatOptions { MaxOutputTokens = 200 }, cts.Token))
                cts.Cancel();
        });
        await WaitUntil(() => Engine.GetStatistics().CancelledRequests > cancelledBefore, "the engine sees the cancellation");
    }

    [Test]
    public void ThePromptTemplateIsDocumentedAndStable()
    {
        var prompt = ChatPromptTemplate.Format([("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello."), ("user", "Bye")]);
        Assert.That(prompt, Is.EqualTo("System: Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Bye\nAssistant:"));
        Assert.That(ChatPromptTemplate.StopSequences, Does.Contain("\nUser:"));
    }
}
