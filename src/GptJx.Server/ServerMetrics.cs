using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using GptJx.Serving;

namespace GptJx.Server;

/// <summary>A Prometheus histogram: cumulative buckets, sum and count.</summary>
internal sealed class Histogram(string name, string help, double[] bounds)
{
    private readonly long[] _counts = new long[bounds.Length + 1];
    private double _sum;
    private long _count;

    public void Observe(double value)
    {
        int i = 0;
        while (i < bounds.Length && value > bounds[i]) i++;
        lock (_counts)
        {
            _counts[i]++;
            _sum += value;
            _count++;
        }
    }

    public void Write(StringBuilder text)
    {
        text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
        text.Append("# TYPE ").Append(name).Append(" histogram\n");
        lock (_counts)
        {
            long cumulative = 0;
            for (int i = 0; i < bounds.Length; i++)
            {
                cumulative += _counts[i];
                text.Append(name).Append("_bucket{le=\"").Append(Format(bounds[i])).Append("\"} ").Append(cumulative).Append('\n');
            }
            cumulative += _counts[^1];
            text.Append(name).Append("_bucket{le=\"+Inf\"} ").Append(cumulative).Append('\n');
            text.Append(name).Append("_sum ").Append(Format(_sum)).Append('\n');
            text.Append(name).Append("_count ").Append(_count).Append('\n');
        }
    }

    public static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>
/// What /metrics reports, in the Prometheus text format: requests by endpoint and status,
/// tokens, queue depth, active sequences, batch size per step, time to first token,
/// inter-token latency and request duration.
/// </summary>
public sealed class ServerMetrics : IDisposable
{
    private static readonly double[] LatencyBounds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    private readonly InferenceEngine _engine;
    private readonly ConcurrentDictionary<(string Endpoint, int Status), long> _requests = new();
    private readonly Histogram _timeToFirstToken = new("gptjx_time_to_first_token_seconds", "Time from a request's arrival to its first generated token.", LatencyBounds);
    private readonly Histogram _interToken = new("gptjx_inter_token_latency_seconds", "Time between consecutive generated tokens of a request.", LatencyBounds);
    private readonly Histogram _duration = new("gptjx_request_duration_seconds", "Time from a request's arrival to its end.", LatencyBounds);
    private readonly Histogram _batchSize;
    private readonly Histogram _stepRows;
    private long _completionTokens, _promptTokens, _disconnects;

    public ServerMetrics(InferenceEngine engine)
    {
        _engine = engine;
        var sizes = new List<double>();
        for (int b = 1; b < engine.Options.MaxBatchSize; b *= 2) sizes.Add(b);
        sizes.Add(engine.Options.MaxBatchSize);
        _batchSize = new Histogram("gptjx_batch_size", "Sequences in one forward step of the engine.", [.. sizes]);
        _stepRows = new Histogram("gptjx_step_tokens", "Token rows (decode rows plus prefill tokens) in one forward step.", [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]);
        _engine.StepCompleted += OnStep;
    }

    private void OnStep(EngineStep step)
    {
        _batchSize.Observe(step.Sequences);
        _stepRows.Observe(step.DecodeRows + step.PrefillRows);
    }

    internal void Request(string endpoint, int status) => _requests.AddOrUpdate((endpoint, status), 1, (_, n) => n + 1);
    internal void FirstToken(TimeSpan sinceArrival) => _timeToFirstToken.Observe(sinceArrival.TotalSeconds);
    internal void InterToken(TimeSpan gap) => _interToken.Observe(gap.TotalSeconds);
    internal void Finished(TimeSpan duration, int promptTokens, int completionTokens)
    {
        _duration.Observe(duration.TotalSeconds);
        Interlocked.Add(ref _promptTokens, promptTokens);
        Interlocked.Add(ref _completionTokens, completionTokens);
    }
    internal void Disconnected() => Interlocked.Increment(ref _disconnects);

    public string Render()
    {
        var stats = _engine.GetStatistics();
        var text = new StringBuilder();
        text.Append("# HELP gptjx_requests_total HTTP requests answered, by endpoint and status code.\n# TYPE gptjx_requests_total counter\n");
        foreach (var ((endpoint, status), count) in _requests.OrderBy(p => p.Key.Endpoint, StringComparer.Ordinal).ThenBy(p => p.Key.Status))
            text.Append("gptjx_requests_total{endpoint=\"").Append(endpoint).Append("\",status=\"").Append(status).Append("\"} ").Append(count).Append('\n');
        Counter(text, "gptjx_prompt_tokens_total", "Prompt tokens of finished HTTP requests.", Interlocked.Read(ref _promptTokens));
        Counter(text, "gptjx_completion_tokens_total", "Tokens generated for finished HTTP requests.", Interlocked.Read(ref _completionTokens));
        Counter(text, "gptjx_client_disconnects_total", "Requests whose client went away before the end (their generation was cancelled).", Interlocked.Read(ref _disconnects));
        Counter(text, "gptjx_engine_requests_submitted_total", "Requests the engine accepted.", stats.SubmittedRequests);
        Counter(text, "gptjx_engine_requests_rejected_total", "Requests refused because the queue was full.", stats.RejectedRequests);
        Counter(text, "gptjx_engine_requests_cancelled_total", "Requests cancelled while queued or generating.", stats.CancelledRequests);
        Counter(text, "gptjx_engine_requests_timed_out_total", "Requests that ran past their timeout.", stats.TimedOutRequests);
        Counter(text, "gptjx_engine_requests_failed_total", "Requests that ended with an error.", stats.FailedRequests);
        Counter(text, "gptjx_engine_generated_tokens_total", "Tokens generated by the engine.", stats.GeneratedTokens);
        Counter(text, "gptjx_engine_steps_total", "Forward steps run by the engine.", stats.Steps);
        Gauge(text, "gptjx_queue_depth", "Requests waiting for a KV-cache slot.", stats.QueuedRequests);
        Gauge(text, "gptjx_active_sequences", "Sequences holding a KV-cache slot.", stats.ActiveSequences);
        Gauge(text, "gptjx_max_batch_size", "KV-cache slots (most sequences per step).", stats.MaxBatchSize);
        Gauge(text, "gptjx_max_queue_length", "Most requests that may wait for a slot.", stats.MaxQueueLength);
        _batchSize.Write(text);
        _stepRows.Write(text);
        _timeToFirstToken.Write(text);
        _interToken.Write(text);
        _duration.Write(text);
        return text.ToString();
    }

    private static void Counter(StringBuilder text, string name, string help, long value) =>
        text.Append("# HELP ").Append(name).Append(' ').Append(help).Append("\n# TYPE ").Append(name).Append(" counter\n").Append(name).Append(' ').Append(value).Append('\n');

    private static void Gauge(StringBuilder text, string name, string help, long value) =>
        text.Append("# HELP ").Append(name).Append(' ').Append(help).Append("\n# TYPE ").Append(name).Append(" gauge\n").Append(name).Append(' ').Append(value).Append('\n');

    public void Dispose() => _engine.StepCompleted -= OnStep;
}
