using System.Runtime.ExceptionServices;

namespace GptJx.Backends.Cpu;

/// <summary>
/// Work that a <see cref="WorkerPool"/> runs on every worker at once. A job object is
/// created once and reused (its fields set before each run), so running one allocates nothing.
/// </summary>
internal abstract class PoolJob
{
    /// <summary>Runs worker <paramref name="worker"/>'s share (0 is the calling thread) of <paramref name="workers"/>.</summary>
    public abstract void Execute(int worker, int workers);

    /// <summary>Called on the calling thread before the workers start (resets shared counters).</summary>
    public virtual void BeforeRun() { }

    /// <summary>The contiguous share [start, end) of <paramref name="count"/> items for one worker, in multiples of <paramref name="grain"/>.</summary>
    public static (int Start, int End) Share(int count, int worker, int workers, int grain = 1)
    {
        int blocks = (count + grain - 1) / grain;
        int start = (int)((long)blocks * worker / workers) * grain;
        int end = (int)((long)blocks * (worker + 1) / workers) * grain;
        return (Math.Min(start, count), Math.Min(end, count));
    }
}

/// <summary>
/// One persistent set of worker threads for the whole backend. The caller's thread is
/// worker 0 and does its share; the others spin briefly for the next job, then sleep.
/// A run costs a few microseconds, against tens for a Parallel.For, which matters at
/// the ~200 operations of one decode step.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    private const int SpinIterations = 2_000;

    private readonly Thread[] _threads;
    private readonly object _gate = new();
    private PoolJob? _job;
    private int _generation;
    private int _pending;
    private int _sleepers;
    private volatile bool _stopping;
    private Exception? _failure;

    public WorkerPool(int workers)
    {
        Workers = Math.Max(1, workers);
        _threads = new Thread[Workers - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int index = i + 1;
            _threads[i] = new Thread(() => Loop(index)) { IsBackground = true, Name = $"gptjx-cpu-{index}" };
            _threads[i].Start();
        }
    }

    public int Workers { get; }

    /// <summary>Runs <paramref name="job"/> on every worker and returns when all are done.</summary>
    public void Run(PoolJob job)
    {
        job.BeforeRun();
        if (Workers == 1)
        {
            job.Execute(0, 1);
            return;
        }
        _job = job;
        _failure = null;
        Volatile.Write(ref _pending, Workers - 1);
        Interlocked.Increment(ref _generation);
        if (Volatile.Read(ref _sleepers) > 0)
            lock (_gate) Monitor.PulseAll(_gate);
        Exception? own = null;
        try { job.Execute(0, Workers); }
        catch (Exception e) { own = e; }
        var spin = new SpinWait();
        while (Volatile.Read(ref _pending) > 0) spin.SpinOnce(sleep1Threshold: -1);
        _job = null;
        var failure = own ?? _failure;
        if (failure is not null) ExceptionDispatchInfo.Capture(failure).Throw();
    }

    private void Loop(int index)
    {
        int seen = 0;
        while (true)
        {
            int spins = 0;
            while (Volatile.Read(ref _generation) == seen && !_stopping)
            {
                if (++spins < SpinIterations) Thread.SpinWait(20);
                else
                {
                    lock (_gate)
                    {
                        Interlocked.Increment(ref _sleepers);
                        while (Volatile.Read(ref _generation) == seen && !_stopping) Monitor.Wait(_gate);
                        Interlocked.Decrement(ref _sleepers);
                    }
                }
            }
            if (_stopping) return;
            seen = Volatile.Read(ref _generation);
            try { _job!.Execute(index, Workers); }
            catch (Exception e) { _failure = e; }
            Interlocked.Decrement(ref _pending);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        lock (_gate) Monitor.PulseAll(_gate);
        foreach (var t in _threads) t.Join();
    }
}
