using System.Numerics.Tensors;

namespace GptJx.Backends.Cpu;

/// <summary>
/// y[t, o] = x[t, :] . W[o, :] + b[o] over packed [out, in] weights. Each weight row is
/// widened to fp32 once per call and reused for every token row, so a call reads the
/// weights once whatever the number of tokens; output rows are split across cores.
/// </summary>
internal static unsafe class MatMul
{
    private const int RowsPerTask = 32;

    public static void Linear(CpuTensor input, CpuMatrix weight, CpuTensor output, bool accumulate)
    {
        int tokens = input.Rows, inF = weight.Columns, outF = weight.Rows;
        if (input.Columns != inF) throw new ArgumentException($"input has {input.Columns} columns, the weight expects {inF}");
        if (output.Columns != outF) throw new ArgumentException($"output has {output.Columns} columns, the weight gives {outF}");
        float[] x = input.Data, y = output.Data;
        float[]? bias = weight.Bias;
        int tasks = (outF + RowsPerTask - 1) / RowsPerTask;
        Parallel.For(0, tasks, () => new float[inF], (task, _, row) =>
        {
            int o1 = Math.Min(outF, (task + 1) * RowsPerTask);
            for (int o = task * RowsPerTask; o < o1; o++)
            {
                WeightConvert.ToSingle(weight.RowPointer(o), weight.Type, row);
                float b = bias?[o] ?? 0f;
                for (int t = 0; t < tokens; t++)
                {
                    float dot = TensorPrimitives.Dot(new ReadOnlySpan<float>(x, t * inF, inF), row) + b;
                    ref float target = ref y[t * outF + o];
                    target = accumulate ? target + dot : dot;
                }
            }
            return row;
        }, _ => { });
    }
}
