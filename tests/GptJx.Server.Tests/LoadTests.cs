using System.Diagnostics;
using System.Text;
using OpenAI.Chat;
using static GptJxServerTests.ServerFixture;

namespace GptJxServerTests;

/// <summary>
/// A bounded load test through the official OpenAI client: 200 streamed chat requests, 32 at once,
/// every tenth cancelled after its first token. Ends with no failures, no slot or queue left
/// behind, managed memory back near its baseline; prints throughput and latency percentiles.
/// </summary>
public class LoadTests
{
    private const int Requests = 200, Concurrency = 32, CancelEvery = 10;

    [Test]
    public async Task TwoHundredStreamedRequestsThirtyTwoAtOnceATenthCancelled()
    {
        var chat = OpenAi().GetChatClient("gpt-jx");
        await Run(chat, 0, 8); // warm up the JIT and the connection pool
        await WaitUntil(() => Engine.ActiveSequences == 0, "warm-up done");
        long baseline = ManagedMemory();
        var before = Engine.GetStatistics();

        var latencies = new double[Requests];
        var firstTokens = new double[Requests];
        var tokens = new int[Requests];
        var failures = new List<string>();
        int cancelled = 0;
        using var slots = new SemaphoreSlim(Concurrency);
        var clock = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, Requests).Select(async i =>
        {
            await slots.WaitAsync();
            try
            {
                // The ones to cancel ask for many tokens, so they are surely still generating when cancelled.
                bool cancel = i % CancelEvery == CancelEvery - 1;
                var r = await Run(chat, i, cancel ? 200 : 12 + i % 13, cancelAfterFirst: cancel);
                latencies[i] = r.Seconds;
                firstTokens[i] = r.FirstToken;
                tokens[i] = r.Tokens;
                if (r.Cancelled) Interlocked.Increment(ref cancelled);
            }
            catch (Exception e)
            {
                lock (failures) failures.Add($"request {i}: {e.GetType().Name}: {e.Message}");
            }
            finally
            {
                slots.Release();
            }
        }).ToArray();
        await Task.WhenAll(tasks);
        double wall = clock.Elapsed.TotalSeconds;

        Assert.That(failures, Is.Empty);
        Assert.That(cancelled, Is.EqualTo(Requests / CancelEvery));
        await WaitUntil(() => Engine.ActiveSequences == 0 && Engine.QueuedRequests == 0, "every slot is free and the queue empty");
        // Every request ended in the engine, as completed or cancelled: a cancelled client's generation may
        // already have finished in the engine (its tokens wait in the stream) when the disconnect arrives.
        await WaitUntil(() => Engine.GetStatistics() is var s && s.CompletedRequests + s.CancelledRequests - before.CompletedRequests - before.CancelledRequests == Requests,
            "every request has ended in the engine");
        var after = Engine.GetStatistics();
        long engineCancelled = after.CancelledRequests - before.CancelledRequests;
        Assert.That(engineCancelled, Is.InRange(1, Requests / CancelEvery), "disconnects cancel generations still running");
        Assert.That(after.SubmittedRequests - before.SubmittedRequests, Is.EqualTo(Requests));
        Assert.That(after.FailedRequests, Is.EqualTo(before.FailedRequests));
        Assert.That(after.RejectedRequests, Is.EqualTo(before.RejectedRequests));
        long memory = ManagedMemory();
        Assert.That(memory - baseline, Is.LessThan(32L << 20), $"managed memory {baseline >> 20} MiB before, {memory >> 20} MiB after");

        var done = Enumerable.Range(0, Requests).Where(i => i % CancelEvery != CancelEvery - 1).ToArray();
        long generated = after.GeneratedTokens - before.GeneratedTokens;
        double stepBatch = (double)generated / Math.Max(1, after.Steps - before.Steps);
        TestContext.Out.WriteLine($"load: {Requests} requests, {Concurrency} at once, {cancelled} cancelled mid-stream ({engineCancelled} still generating when cancelled), 0 failed, {wall:0.00} s");
        TestContext.Out.WriteLine($"throughput: {Requests / wall:0.0} requests/s, {generated / wall:0} generated tokens/s, {stepBatch:0.0} tokens per forward step (max batch {MaxBatch})");
        TestContext.Out.WriteLine($"latency (completed requests): p50 {Percentile(done.Select(i => latencies[i]), 50) * 1000:0} ms, p99 {Percentile(done.Select(i => latencies[i]), 99) * 1000:0} ms");
        TestContext.Out.WriteLine($"time to first token: p50 {Percentile(firstTokens, 50) * 1000:0} ms, p99 {Percentile(firstTokens, 99) * 1000:0} ms");
        TestContext.Out.WriteLine($"managed memory: {baseline >> 20} MiB before, {memory >> 20} MiB after; engine: {after.ActiveSequences} active, {after.QueuedRequests} queued");
    }

    private static async Task<(double Seconds, double FirstToken, int Tokens, bool Cancelled)> Run(ChatClient chat, int i, int maxTokens, bool cancelAfterFirst = false)
    {
        var messages = new ChatMessage[] { new UserChatMessage($"Request {i}: write a few words about the number {i}.") };
        var options = new ChatCompletionOptions { MaxOutputTokenCount = maxTokens };
        if (i % 3 == 0) { options.Temperature = 0.8f; options.Seed = i; }
        else options.Temperature = 0;
        using var cts = new CancellationTokenSource();
        var clock = Stopwatch.StartNew();
        double first = 0;
        int tokens = 0;
        var text = new StringBuilder();
        try
        {
            await foreach (var update in chat.CompleteChatStreamingAsync(messages, options, cts.Token))
            {
                foreach (var part in update.ContentUpdate) text.Append(part.Text);
                if (first == 0 && update.ContentUpdate.Any(part => !string.IsNullOrEmpty(part.Text)))
                {
                    first = clock.Elapsed.TotalSeconds;
                    if (cancelAfterFirst) cts.Cancel();
                }
                if (update.Usage is { } usage) tokens = usage.OutputTokenCount;
            }
        }
        catch (OperationCanceledException) when (cancelAfterFirst)
        {
            return (clock.Elapsed.TotalSeconds, first, 0, true);
        }
        if (cancelAfterFirst) throw new InvalidOperationException("the stream ended before it could be cancelled");
        if (tokens == 0) throw new InvalidOperationException("no usage reported");
        return (clock.Elapsed.TotalSeconds, first, tokens, false);
    }

    private static long ManagedMemory()
    {
        for (int i = 0; i < 3; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static double Percentile(IEnumerable<double> values, int p)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return 0;
        int index = (int)Math.Ceiling(p / 100.0 * sorted.Length) - 1;
        return sorted[Math.Clamp(index, 0, sorted.Length - 1)];
    }
}
