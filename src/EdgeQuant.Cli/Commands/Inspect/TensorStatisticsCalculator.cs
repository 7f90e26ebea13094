using System.Numerics;
using System.Numerics.Tensors;
using EdgeQuant.Cli.Framework.Progress;
using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;

namespace EdgeQuant.Cli.Commands.Inspect;

/// <summary>
/// Statistics of every tensor of a model, in parallel over fixed-size chunks, with bounded memory: a chunk is
/// dequantized into a per-worker buffer rather than converting whole tensors (a 150k-token embedding would be
/// gigabytes as F32). Chunks are merged per tensor in a fixed order, so results do not depend on scheduling.
/// </summary>
public static class TensorStatisticsCalculator
{
    /// <summary>Elements per work item: a multiple of every block size (32, 256) and small enough for L2.</summary>
    public const int ChunkElements = 1 << 16;

    public static (TensorStatistics? Stats, string? Error)[] Compute(IReadOnlyList<ModelTensor> tensors, IProgressReporter progress, CancellationToken cancellationToken)
    {
        var results = new (TensorStatistics?, string?)[tensors.Count];
        var items = new List<(int Tensor, long Start, int Count)>();
        for (var i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            var info = TensorTypes.Get(t.Type);
            if (t.ElementCount == 0) { results[i] = (null, "empty tensor"); continue; }
            if (!Dequantizable(t.Type)) { results[i] = (null, $"no F32 view of {info.Name}"); continue; }
            for (long start = 0; start < t.ElementCount; start += ChunkElements)
                items.Add((i, start, (int)Math.Min(ChunkElements, t.ElementCount - start)));
        }

        var total = items.Sum(i => (double)i.Count);
        var task = progress.AddTask("tensor statistics", total);
        var partial = new Moments[items.Count];
        Parallel.For(0, items.Count,
            new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = Environment.ProcessorCount },
            () => new float[ChunkElements],
            (k, _, buffer) =>
            {
                var (ti, start, count) = items[k];
                var tensor = tensors[ti];
                var info = TensorTypes.Get(tensor.Type);
                // Statistics ignore element order, so the stored bytes serve even when the canonical layout is a
                // permutation of them (Q/K interleaving); no transform is applied.
                var byteStart = start / info.BlockSize * info.BlockBytes;
                var byteCount = count / info.BlockSize * info.BlockBytes;
                var src = tensor.Storage.Bytes.Slice(checked((int)byteStart), checked((int)byteCount));
                var dst = buffer.AsSpan(0, count);
                Dequantize.Row(tensor.Type, src, dst);
                partial[k] = Moments.Of(dst);
                task.Increment(count);
                return buffer;
            },
            _ => { });

        var merged = new Moments?[tensors.Count];
        for (var k = 0; k < items.Count; k++)
        {
            var ti = items[k].Tensor;
            merged[ti] = merged[ti] is { } m ? Moments.Merge(m, partial[k]) : partial[k];
        }
        for (var i = 0; i < tensors.Count; i++)
            if (merged[i] is { } m) results[i] = (m.ToStatistics(), null);
        return results;
    }

    private static bool Dequantizable(TensorType type) => type switch
    {
        TensorType.I8 or TensorType.U8 or TensorType.I16 or TensorType.I32 or TensorType.I64 or TensorType.F64 or TensorType.Bool => false,
        _ => true,
    };

    /// <summary>Count, mean and sum of squared deviations (Chan et al.'s mergeable form), plus extremes and counts.</summary>
    public readonly record struct Moments(long N, double Mean, double M2, float Min, float Max, long Zeros, long NonFinite)
    {
        // Sums run in float over short runs, where float error stays near 1e-7 relative, and in double across runs.
        private const int Run = 1024;

        public static Moments Of(ReadOnlySpan<float> x)
        {
            double sum = 0;
            for (var i = 0; i < x.Length; i += Run) sum += TensorPrimitives.Sum(x.Slice(i, Math.Min(Run, x.Length - i)));
            var mean = sum / x.Length;
            Span<float> dev = stackalloc float[Run];
            double m2 = 0;
            for (var i = 0; i < x.Length; i += Run)
            {
                var part = x.Slice(i, Math.Min(Run, x.Length - i));
                var d = dev[..part.Length];
                TensorPrimitives.Subtract(part, (float)mean, d);
                m2 += TensorPrimitives.SumOfSquares(d);
            }
            var (zeros, nonFinite) = CountZerosAndNonFinite(x);
            // The deviations were taken from mean rounded to float; correct M2 for that offset exactly.
            var offset = mean - (float)mean;
            m2 -= x.Length * offset * offset;
            return new Moments(x.Length, mean, Math.Max(m2, 0), TensorPrimitives.Min(x), TensorPrimitives.Max(x), zeros, nonFinite);
        }

        /// <summary>Exact zeros (either sign) and NaN/±Inf. TensorPrimitives has no counting primitive, hence this loop.</summary>
        public static (long Zeros, long NonFinite) CountZerosAndNonFinite(ReadOnlySpan<float> x)
        {
            var zeroLanes = Vector<int>.Zero;
            var finiteLanes = Vector<int>.Zero;
            var inf = new Vector<float>(float.PositiveInfinity);
            var i = 0;
            // Comparisons give -1 per matching lane; a chunk of 64 Ki elements cannot overflow an int lane.
            for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var v = new Vector<float>(x.Slice(i, Vector<float>.Count));
                zeroLanes += Vector.Equals(v, Vector<float>.Zero);
                finiteLanes += Vector.LessThan(Vector.Abs(v), inf); // false for NaN and ±Inf
            }
            long zeros = -Vector.Sum(zeroLanes), finite = -Vector.Sum(finiteLanes);
            for (; i < x.Length; i++)
            {
                if (x[i] == 0f) zeros++;
                if (float.IsFinite(x[i])) finite++;
            }
            return (zeros, x.Length - finite);
        }

        public static Moments Merge(Moments a, Moments b)
        {
            var n = a.N + b.N;
            var delta = b.Mean - a.Mean;
            return new Moments(
                n,
                a.Mean + delta * b.N / n,
                a.M2 + b.M2 + delta * delta * ((double)a.N * b.N / n),
                float.IsNaN(a.Min) || float.IsNaN(b.Min) ? float.NaN : Math.Min(a.Min, b.Min),
                float.IsNaN(a.Max) || float.IsNaN(b.Max) ? float.NaN : Math.Max(a.Max, b.Max),
                a.Zeros + b.Zeros,
                a.NonFinite + b.NonFinite);
        }

        public TensorStatistics ToStatistics() =>
            new(Min, Max, Mean, Math.Sqrt(M2 / N), (double)Zeros / N, NonFinite);
    }
}
