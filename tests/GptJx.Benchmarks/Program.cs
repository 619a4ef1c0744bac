using BenchmarkDotNet.Running;
using GptJx.Benchmarks;

if (args.Length > 0 && args[0] == "quick") return QuickTiming.Run(args[1..]);
if (args.Length > 0 && args[0] == "quick-alloc") return QuickTiming.Alloc();
BenchmarkSwitcher.FromAssembly(typeof(KernelBenchmarks).Assembly).Run(args);
return 0;
