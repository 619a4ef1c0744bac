using System.Runtime.ExceptionServices;

namespace GptJx.Backends.Cpu;

/// <summary>
/// Work that a <see cref="WorkerPool"/> splits into chunks that the workers claim one at a
/// time. A job object is created once and reused (its fields set before each run), so
/// running one allocates nothing.
/// </summary>
internal abstract class PoolJob
{
    /// <summary>Called on the calling thread before a run; returns the number of chunks.</summary>
    public abstract int BeginRun(int workers);

    /// <summary>Runs chunk <paramref name="chunk"/> on worker <paramref name="worker"/> (0 is the calling thread).</summary>
    public abstract void RunChunk(int chunk, int worker);

    /// <summary>The contiguous share [start, end) of <paramref name="count"/> items for part <paramref name="part"/> of <paramref name="parts"/>, in multiples of <paramref name="grain"/>.</summary>
    public static (int Start, int End) Share(int count, int part, int parts, int grain = 1)
    {
        int blocks = (count + grain - 1) / grain;
        int start = (int)((long)blocks * part / parts) * grain;
        int end = (int)((long)blocks * (part + 1) / parts) * grain;
        return (Math.Min(start, count), Math.Min(end, count));
    }
}

/// <summary>
/// One persistent set of worker threads for the whole backend. The caller's thread is
/// worker 0; a run hands out chunks from a shared counter (tagged with the run's number, so a
/// worker that wakes late finds nothing to do rather than work of the next run), and returns
/// when every chunk is done. No thread waits for another to start: on a machine whose cores
/// are shared with other processes, a worker that is not scheduled simply claims fewer chunks.
/// Waiting threads spin briefly, then sleep, leaving the core to whoever needs it.
/// A run costs a few microseconds, against tens for a Parallel.For, which matters at the
/// ~200 operations of one decode step.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    private const int SpinIterations = 2_000;

    private readonly Thread[] _threads;
    private readonly object _gate = new();
    private readonly object _doneGate = new();
    private PoolJob? _job;
    private long _claim;          // run number << 32 | next chunk
    private int _run;
    private int _chunks;
    private int _done;
    private int _sleepers;
    private int _mainWaiting;
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

    /// <summary>Runs every chunk of <paramref name="job"/> and returns when all are done.</summary>
    public void Run(PoolJob job)
    {
        int chunks = job.BeginRun(Workers);
        if (chunks <= 0) return;
        if (Workers == 1 || chunks == 1)
        {
            for (int c = 0; c < chunks; c++) job.RunChunk(c, 0);
            return;
        }
        _job = job;
        _failure = null;
        _chunks = chunks;
        Volatile.Write(ref _done, 0);
        int run = ++_run;
        Interlocked.Exchange(ref _claim, (long)run << 32);
        if (Volatile.Read(ref _sleepers) > 0)
            lock (_gate) Monitor.PulseAll(_gate);

        Work(run, job, 0);

        var spin = 0;
        while (Volatile.Read(ref _done) < chunks)
        {
            if (++spin < SpinIterations) Thread.SpinWait(20);
            else
            {
                lock (_doneGate)
                {
                    Interlocked.Exchange(ref _mainWaiting, 1);
                    while (Volatile.Read(ref _done) < chunks) Monitor.Wait(_doneGate);
                    Interlocked.Exchange(ref _mainWaiting, 0);
                }
            }
        }
        _job = null;
        if (_failure is { } failure) ExceptionDispatchInfo.Capture(failure).Throw();
    }

    /// <summary>Claims and runs chunks of run <paramref name="run"/> until none are left.</summary>
    private void Work(int run, PoolJob job, int worker)
    {
        while (true)
        {
            long claim = Volatile.Read(ref _claim);
            if ((int)(claim >> 32) != run) return;
            int chunk = (int)claim;
            if (chunk >= _chunks) return;
            if (Interlocked.CompareExchange(ref _claim, claim + 1, claim) != claim) continue;
            try { job.RunChunk(chunk, worker); }
            catch (Exception e) { _failure ??= e; }
            if (Interlocked.Increment(ref _done) == _chunks && Volatile.Read(ref _mainWaiting) != 0)
                lock (_doneGate) Monitor.PulseAll(_doneGate);
        }
    }

    private void Loop(int index)
    {
        int seen = 0;
        while (true)
        {
            int spins = 0;
            while ((int)(Volatile.Read(ref _claim) >> 32) == seen && !_stopping)
            {
                if (++spins < SpinIterations) Thread.SpinWait(20);
                else
                {
                    lock (_gate)
                    {
                        Interlocked.Increment(ref _sleepers);
                        while ((int)(Volatile.Read(ref _claim) >> 32) == seen && !_stopping) Monitor.Wait(_gate);
                        Interlocked.Decrement(ref _sleepers);
                    }
                }
            }
            if (_stopping) return;
            seen = (int)(Volatile.Read(ref _claim) >> 32);
            var job = _job;
            if (job is not null) Work(seen, job, index);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        lock (_gate) Monitor.PulseAll(_gate);
        foreach (var t in _threads) t.Join();
    }
}
