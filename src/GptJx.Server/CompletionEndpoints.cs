using System.Diagnostics;
using System.Text;
using System.Text.Json;
using GptJx.Generation;
using GptJx.Serving;
using Microsoft.AspNetCore.Http;

namespace GptJx.Server;

/// <summary>The handlers of /v1/completions and /v1/chat/completions, streaming (SSE) and not.</summary>
internal sealed class CompletionEndpoints(InferenceEngine engine, GptJxServerOptions options, ServerMetrics metrics)
{
    private InferenceEngine Engine => engine;
    private GptJxServerOptions Options => options;
    private ServerMetrics Metrics => metrics;

    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    public Task Completions(HttpContext context) => Handle(context, chat: false);

    public Task ChatCompletions(HttpContext context) => Handle(context, chat: true);

    private async Task Handle(HttpContext context, bool chat)
    {
        string endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
        long arrival = Stopwatch.GetTimestamp();
        var aborted = context.RequestAborted;
        ApiRequest request;
        GenerationStream stream;
        try
        {
            using var body = await JsonDocument.ParseAsync(context.Request.Body, new JsonDocumentOptions { MaxDepth = 32 }, aborted);
            request = chat ? RequestParser.ParseChat(body.RootElement, options) : RequestParser.ParseCompletion(body.RootElement, options);
            stream = engine.Submit(request.Generation, aborted);
        }
        catch (Exception e) when (aborted.IsCancellationRequested && e is OperationCanceledException or IOException)
        {
            metrics.Disconnected();
            return;
        }
        catch (Exception e)
        {
            var error = ApiErrors.From(e, chat);
            if (error.Status == 429) context.Response.Headers.RetryAfter = "1";
            await Error(context, endpoint, error);
            return;
        }

        using (stream)
        {
            var response = new ResponseWriter(this, context, request, stream, chat, arrival);
            try
            {
                if (request.Stream) await response.Stream();
                else await response.Whole();
                metrics.Request(endpoint, 200);
                metrics.Finished(Stopwatch.GetElapsedTime(arrival), stream.PromptTokens, stream.CompletionTokens);
            }
            catch (Exception) when (aborted.IsCancellationRequested)
            {
                // The client went away: the generation was cancelled with it and its slot is free.
                metrics.Disconnected();
                metrics.Request(endpoint, 499);
            }
            catch (Exception e)
            {
                // A timeout, the engine shutting down, or the model failing on this request: an error
                // body, or once the stream has started, an error event that ends it.
                var error = ApiErrors.From(e, chat);
                if (!context.Response.HasStarted) await Error(context, endpoint, error);
                else
                {
                    metrics.Request(endpoint, error.Status);
                    if (request.Stream) await response.StreamError(error);
                    else context.Abort();
                }
            }
        }
    }

    private async Task Error(HttpContext context, string endpoint, ApiError error)
    {
        metrics.Request(endpoint, error.Status);
        context.Response.StatusCode = error.Status;
        context.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(context.Response.Body, error.Body, ProtocolJson.Default.ErrorBody);
    }

    /// <summary>Writes one response: the whole completion, or its SSE chunks as tokens arrive.</summary>
    private sealed class ResponseWriter(CompletionEndpoints owner, HttpContext context, ApiRequest request, GenerationStream stream, bool chat, long arrival)
    {
        private readonly string _id = (chat ? "chatcmpl-" : "cmpl-") + stream.Id.ToString("x8");
        private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        private readonly string _model = owner.Options.ModelId;
        private readonly GptJx.Tokenization.Gpt2Tokenizer _tokenizer = owner.Engine.Model.Tokenizer;
        private readonly LeadingWhitespaceTrimmer _trimmer = new();
        private long _lastToken;

        /// <summary>Times a token for the metrics and returns its text (chat drops the leading whitespace).</summary>
        private string Observe(EngineToken token)
        {
            long now = Stopwatch.GetTimestamp();
            if (_lastToken == 0) owner.Metrics.FirstToken(Stopwatch.GetElapsedTime(arrival, now));
            else owner.Metrics.InterToken(Stopwatch.GetElapsedTime(_lastToken, now));
            _lastToken = now;
            return chat ? _trimmer.Push(token.Text) : token.Text;
        }

        private static string? FinishName(FinishReason finish) => finish switch
        {
            FinishReason.Stop => "stop",
            FinishReason.Length => "length",
            _ => null,
        };

        private string FinalFinish => FinishName(stream.Finish) ?? "length";

        private Usage Usage => new(stream.PromptTokens, stream.CompletionTokens, stream.PromptTokens + stream.CompletionTokens);

        public async Task Whole()
        {
            var text = new StringBuilder(request.EchoText);
            var tokens = new List<EngineToken>();
            await foreach (var token in stream.WithCancellation(context.RequestAborted))
            {
                text.Append(Observe(token));
                tokens.Add(token);
            }
            context.Response.ContentType = "application/json";
            if (chat)
            {
                var logprobs = request.Generation.TopLogprobs is null ? null : new ChatLogprobs(tokens.Select(ChatLogprob).ToList());
                var body = new ChatCompletion(_id, "chat.completion", _created, _model,
                    [new ChatChoice(0, new ChatMessageBody("assistant", text.ToString()), logprobs, FinalFinish)], Usage, null);
                await JsonSerializer.SerializeAsync(context.Response.Body, body, ProtocolJson.Default.ChatCompletion, context.RequestAborted);
            }
            else
            {
                var logprobs = request.Generation.TopLogprobs is null ? null : CompletionLogprobs(tokens, request.EchoText.Length);
                var body = new Completion(_id, "text_completion", _created, _model, [new CompletionChoice(text.ToString(), 0, logprobs, FinalFinish)], Usage);
                await JsonSerializer.SerializeAsync(context.Response.Body, body, ProtocolJson.Default.Completion, context.RequestAborted);
            }
        }

        public async Task Stream()
        {
            var response = context.Response;
            response.ContentType = "text/event-stream";
            response.Headers.CacheControl = "no-cache";
            response.Headers["X-Accel-Buffering"] = "no";
            await response.StartAsync(context.RequestAborted);
            int offset = 0;
            if (chat) await Event(Chunk(new ChatDelta("assistant", ""), null, null));
            else if (request.EchoText.Length > 0)
            {
                await Event(TextChunk(request.EchoText, null, null));
                offset = request.EchoText.Length;
            }
            await foreach (var token in stream.WithCancellation(context.RequestAborted))
            {
                string text = Observe(token);
                bool hasLogprobs = request.Generation.TopLogprobs is not null;
                // Chat streams skip empty pieces (a character or a stop sequence pending); completions keep the one-token-per-chunk shape when logprobs are asked.
                if (text.Length == 0 && !hasLogprobs) continue;
                if (chat) await Event(Chunk(new ChatDelta(null, text), hasLogprobs ? new ChatLogprobs([ChatLogprob(token)]) : null, null));
                else
                {
                    await Event(TextChunk(text, hasLogprobs ? CompletionLogprobs([token], offset) : null, null));
                    offset += text.Length;
                }
            }
            if (chat) await Event(Chunk(new ChatDelta(null, null), null, FinalFinish));
            else await Event(TextChunk("", null, FinalFinish));
            if (request.IncludeUsage)
            {
                if (chat) await Event(new ChatCompletionChunk(_id, "chat.completion.chunk", _created, _model, [], Usage));
                else await Event(new Completion(_id, "text_completion", _created, _model, [], Usage));
            }
            await response.Body.WriteAsync(Done, context.RequestAborted);
            await response.Body.FlushAsync(context.RequestAborted);
        }

        /// <summary>An error after the stream has started: one SSE event with the error body, then the end.</summary>
        public async Task StreamError(ApiError error)
        {
            try
            {
                await Write(JsonSerializer.SerializeToUtf8Bytes(error.Body, ProtocolJson.Default.ErrorBody));
                await context.Response.Body.WriteAsync(Done, context.RequestAborted);
            }
            catch (Exception) when (context.RequestAborted.IsCancellationRequested)
            {
            }
        }

        private ChatCompletionChunk Chunk(ChatDelta delta, ChatLogprobs? logprobs, string? finish) =>
            new(_id, "chat.completion.chunk", _created, _model, [new ChatChunkChoice(0, delta, logprobs, finish)], null);

        private Completion TextChunk(string text, CompletionLogprobs? logprobs, string? finish) =>
            new(_id, "text_completion", _created, _model, [new CompletionChoice(text, 0, logprobs, finish)], null);

        private Task Event(ChatCompletionChunk chunk) => Write(JsonSerializer.SerializeToUtf8Bytes(chunk, ProtocolJson.Default.ChatCompletionChunk));

        private Task Event(Completion chunk) => Write(JsonSerializer.SerializeToUtf8Bytes(chunk, ProtocolJson.Default.Completion));

        private async Task Write(byte[] json)
        {
            var body = context.Response.Body;
            await body.WriteAsync(DataPrefix, context.RequestAborted);
            await body.WriteAsync(json, context.RequestAborted);
            await body.WriteAsync(EventEnd, context.RequestAborted);
            await body.FlushAsync(context.RequestAborted);
        }

        private string TokenText(int id) => _tokenizer.Decode([id]);

        private int[] TokenBytes(int id) => _tokenizer.DecodeBytes([id]).Select(b => (int)b).ToArray();

        private ChatTokenLogprob ChatLogprob(EngineToken token)
        {
            var lp = token.Logprobs!;
            return new ChatTokenLogprob(TokenText(token.Id), lp.Logprob, TokenBytes(token.Id),
                lp.Top.Select(t => new ChatTopLogprob(TokenText(t.Id), t.Logprob, TokenBytes(t.Id))).ToList());
        }

        private CompletionLogprobs CompletionLogprobs(IReadOnlyList<EngineToken> tokens, int offset)
        {
            var names = new List<string>();
            var values = new List<float?>();
            var tops = new List<Dictionary<string, float>?>();
            var offsets = new List<int>();
            foreach (var token in tokens)
            {
                var lp = token.Logprobs!;
                string name = TokenText(token.Id);
                names.Add(name);
                values.Add(lp.Logprob);
                var top = new Dictionary<string, float>();
                foreach (var t in lp.Top) top.TryAdd(TokenText(t.Id), t.Logprob);
                tops.Add(top);
                offsets.Add(offset);
                offset += token.Text.Length;
            }
            return new CompletionLogprobs(names, values, tops, offsets);
        }
    }
}
