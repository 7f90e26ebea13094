using System.Diagnostics;
using EdgeQuant.Formats.Onnx.Proto;
using EdgeQuant.Runtimes.OnnxRuntime;
using Google.Protobuf;

namespace EdgeQuant.Benchmarks.Runtimes;

/// <summary>
/// Per-call overhead of an ONNX Runtime <c>Run</c> through the binding on a tiny model (one Add over 2x3 floats),
/// where the kernel itself costs nanoseconds, so the figure is the binding plus ORT's own per-run bookkeeping.
/// Self-contained (own median timer) so it does not depend on the rest of the harness.
/// </summary>
public static class OrtBenchmarks
{
    public static void RunOverhead()
    {
        using var session = OrtSession.FromBytes(TinyAdd(), new OrtSessionSettings { IntraOpThreads = 1 });
        var a = new float[6];
        var b = new float[6];
        using var x = OrtValue.CreateTensor(a, [2, 3]);
        using var y = OrtValue.CreateTensor(b, [2, 3]);
        var inputs = new[] { KeyValuePair.Create("x", x), KeyValuePair.Create("y", y) };

        double nativeRun = Median(() =>
        {
            using var r = session.Run(inputs);
            return session.LastRunTime.TotalSeconds;
        });
        double fullCall = Median(() =>
        {
            long t0 = Stopwatch.GetTimestamp();
            using (var r = session.Run(inputs)) { }
            return Stopwatch.GetElapsedTime(t0).TotalSeconds;
        });
        double withInputs = Median(() =>
        {
            long t0 = Stopwatch.GetTimestamp();
            using (var xi = OrtValue.CreateTensor(a, [2, 3]))
            using (var yi = OrtValue.CreateTensor(b, [2, 3]))
            using (var r = session.Run(("x", xi), ("y", yi))) { }
            return Stopwatch.GetElapsedTime(t0).TotalSeconds;
        });
        Console.WriteLine($"onnxruntime {OrtEnvironment.Version}: Add[2x3] median per call: native Run {nativeRun * 1e6:F1} us, " +
                          $"binding Run {fullCall * 1e6:F1} us, with input tensors created per call {withInputs * 1e6:F1} us");
    }

    private static double Median(Func<double> timedCall)
    {
        for (int i = 0; i < 200; i++) timedCall();
        var times = new List<double>();
        var budget = Stopwatch.StartNew();
        while (times.Count < 2000 && (times.Count < 50 || budget.Elapsed.TotalSeconds < 1.0)) times.Add(timedCall());
        times.Sort();
        return times[times.Count / 2];
    }

    private static byte[] TinyAdd()
    {
        static ValueInfoProto Float23(string name) => new()
        {
            Name = name,
            Type = new TypeProto
            {
                TensorType = new TypeProto.Types.Tensor
                {
                    ElemType = (int)TensorProto.Types.DataType.Float,
                    Shape = new TensorShapeProto { Dim = { new TensorShapeProto.Types.Dimension { DimValue = 2 }, new TensorShapeProto.Types.Dimension { DimValue = 3 } } },
                },
            },
        };
        return new ModelProto
        {
            IrVersion = 8,
            OpsetImport = { new OperatorSetIdProto { Version = 17 } },
            Graph = new GraphProto
            {
                Name = "add",
                Node = { new NodeProto { OpType = "Add", Input = { "x", "y" }, Output = { "z" } } },
                Input = { Float23("x"), Float23("y") },
                Output = { Float23("z") },
            },
        }.ToByteArray();
    }
}
