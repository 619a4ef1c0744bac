using System.CommandLine;
using GptJx.Serving;
using GptJx.Server;
using Microsoft.Extensions.Logging;

namespace GptJx.Cli.Commands;

internal static class ServeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model(required: false);
        model.Description += ". Without it, a random-weight test model is made once and served (to try the server with no weights at hand)";
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var host = new Option<string>("--host") { Description = "Address to listen on: an IP, localhost, or * for every interface", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port", "-p") { Description = "TCP port (0 = any free port)", DefaultValueFactory = _ => 8080 };
        var maxBatch = new Option<int>("--max-batch") { Description = "Sequences generated at once (KV-cache slots; decode rows per step)", DefaultValueFactory = _ => 8 };
        var maxQueue = new Option<int>("--max-queue") { Description = "Requests that may wait for a slot; more get HTTP 429", DefaultValueFactory = _ => 64 };
        var prefillChunk = new Option<int>("--prefill-chunk") { Description = "Prompt tokens prefilled per step beside the decode rows", DefaultValueFactory = _ => 256 };
        var maxSequence = new Option<int?>("--max-seq-len") { Description = "Positions per KV slot, prompt plus generation (default: the model's context)" };
        var timeout = new Option<double?>("--timeout") { Description = "Seconds a request may run before it is ended (default: no limit)" };
        var modelId = new Option<string>("--model-id") { Description = "Model name served by /v1/models and echoed in responses", DefaultValueFactory = _ => "gpt-jx" };

        var command = new Command("serve", "Serve the model over HTTP with an OpenAI-compatible API (/v1/completions, /v1/chat/completions, /v1/models, /health, /metrics)")
        {
            model, device, dtype, host, port, maxBatch, maxQueue, prefillChunk, maxSequence, timeout, modelId,
        };
        command.SetAction((parse, cancel) => CommonOptions.Run(parse, async () =>
        {
            var engineOptions = new EngineOptions
            {
                MaxBatchSize = parse.GetValue(maxBatch),
                MaxQueueLength = parse.GetValue(maxQueue),
                PrefillChunk = parse.GetValue(prefillChunk),
                MaxSequenceLength = parse.GetValue(maxSequence),
                RequestTimeout = parse.GetValue(timeout) is { } seconds ? Seconds(seconds) : null,
            };
            engineOptions.Validate();
            int portValue = parse.GetValue(port);
            if (portValue is < 0 or > 65535) throw new UsageException($"--port {portValue} is not 0..65535");
            bool verbose = parse.GetValue(CommonOptions.Verbose);

            var loaded = ModelLoading.Load(parse.GetValue(model) ?? DemoModel.Ensure(), parse.GetValue(device)!, parse.GetValue(dtype),
                engineOptions.PrefillChunk, engineOptions.MaxBatchSize, engineOptions.MaxSequenceLength);
            await using var engine = new InferenceEngine(loaded, engineOptions, ownsModel: true);
            var server = GptJxServer.Create(engine, new GptJxServerOptions { Host = parse.GetValue(host)!, Port = portValue, ModelId = parse.GetValue(modelId)! },
                verbose ? LogLevel.Information : LogLevel.Warning);
            await using (server)
            {
                await server.StartAsync(cancel);
                Console.Error.WriteLine($"serving {loaded.Location} on {string.Join(", ", server.Urls)} ({engine.Model.Backend.Name}; batch {engineOptions.MaxBatchSize}, queue {engineOptions.MaxQueueLength}); Ctrl+C stops");
                await server.WaitForShutdownAsync(cancel);
            }
            return 0;
        }));
        return command;
    }

    /// <summary>--timeout in seconds; NaN, infinities and values beyond TimeSpan's range are refused here, the rest by the engine's limits.</summary>
    private static TimeSpan Seconds(double seconds) =>
        double.IsFinite(seconds) && Math.Abs(seconds) < TimeSpan.MaxValue.TotalSeconds
            ? TimeSpan.FromSeconds(seconds)
            : throw new UsageException($"--timeout must be a positive number of seconds (got {seconds})");
}
