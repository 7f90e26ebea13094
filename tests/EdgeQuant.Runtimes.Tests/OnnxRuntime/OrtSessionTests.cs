using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.Onnx.Proto;
using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Testing;

namespace EdgeQuant.Runtimes.Tests.OnnxRuntime;

public sealed class OrtSessionTests
{
    public OrtSessionTests() => RuntimeAvailability.Configure();

    [OnnxRuntimeFact]
    public void Library_reports_the_pinned_version()
    {
        RuntimeAvailability.Require(NativeLibraries.OnnxRuntime);
        Assert.Equal("1.30.0", OrtEnvironment.Version);
    }

    [OnnxRuntimeFact]
    public void Every_supported_element_type_round_trips_through_identity_with_its_metadata()
    {
        Check<float>(TensorProto.Types.DataType.Float, i => i * 0.5f - 1e-3f);
        Check<Half>(TensorProto.Types.DataType.Float16, i => (Half)(i * 0.25f));
        Check<double>(TensorProto.Types.DataType.Double, i => Math.PI * i);
        Check<long>(TensorProto.Types.DataType.Int64, i => long.MinValue + i * 1234567890123L);
        Check<int>(TensorProto.Types.DataType.Int32, i => int.MaxValue - i * 77777);
        Check<short>(TensorProto.Types.DataType.Int16, i => (short)(-300 * i));
        Check<sbyte>(TensorProto.Types.DataType.Int8, i => (sbyte)(-128 + 17 * i));
        Check<byte>(TensorProto.Types.DataType.Uint8, i => (byte)(250 - 13 * i));
        Check<ushort>(TensorProto.Types.DataType.Uint16, i => (ushort)(65535 - 1000 * i));
        Check<uint>(TensorProto.Types.DataType.Uint32, i => uint.MaxValue - (uint)i * 99991u);
        Check<ulong>(TensorProto.Types.DataType.Uint64, i => ulong.MaxValue - (ulong)i * 1234567891011UL);
        Check<bool>(TensorProto.Types.DataType.Bool, i => i % 3 == 1);

        using var session = OrtSession.FromBytes(OrtTestModels.Identity(TensorProto.Types.DataType.String));
        string[] text = ["", "a", "héllo", "ünïcode ✓", "x y", "last"];
        using var input = OrtValue.CreateStringTensor(text, [2, 3]);
        using var result = session.Run(("x", input));
        Assert.Equal(OrtElementType.String, result[0].ElementType);
        Assert.Equal(text, result[0].GetStrings());
    }

    private static void Check<T>(TensorProto.Types.DataType type, Func<int, T> make) where T : unmanaged
    {
        using var session = OrtSession.FromBytes(OrtTestModels.Identity(type));
        var x = Assert.Single(session.Inputs);
        Assert.Equal("x", x.Name);
        Assert.Equal((OrtElementType)type, x.ElementType);
        Assert.Equal([-1L, 3L], x.Shape);
        Assert.Equal(["N", ""], x.SymbolicShape);
        Assert.Equal("y", Assert.Single(session.Outputs).Name);

        var data = Enumerable.Range(0, 12).Select(make).ToArray();
        using var input = OrtValue.CreateTensor(data, [4, 3], (OrtElementType)type);
        using var result = session.Run(("x", input));
        var y = result["y"];
        Assert.Equal(OrtValueKind.Tensor, y.Kind);
        Assert.Equal((OrtElementType)type, y.ElementType);
        Assert.Equal([4L, 3L], y.Shape);
        Assert.Equal(data, y.GetTensorData<T>().ToArray());
    }

    [OnnxRuntimeFact]
    public void Add_from_file_and_bytes_agree_with_a_scalar_sum_and_are_timed()
    {
        using var dir = new TempDir();
        var path = dir.File("add.onnx");
        File.WriteAllBytes(path, OrtTestModels.Add());
        float[] a = [1, 2, 3, -4, 5.5f, 1e-3f];
        float[] b = [10, 20, 30, 40, -5.5f, 2e-3f];
        foreach (var session in new[] { OrtSession.FromFile(path), OrtSession.FromBytes(File.ReadAllBytes(path)) })
        {
            using (session)
            using (var x = OrtValue.CreateTensor(a, [2, 3]))
            using (var y = OrtValue.CreateTensor(b, [2, 3]))
            using (var result = session.Run(("x", x), ("y", y)))
            {
                var z = result["z"].GetTensorData<float>().ToArray();
                Assert.Equal(a.Zip(b, (p, q) => p + q).ToArray(), z);
                Assert.True(result.Elapsed > TimeSpan.Zero);
                Assert.Equal(result.Elapsed, session.LastRunTime);
            }
        }
    }

    [OnnxRuntimeFact]
    public void Outputs_can_be_written_into_caller_made_tensors_over_managed_memory()
    {
        using var session = OrtSession.FromBytes(OrtTestModels.Add());
        float[] a = [1, 2, 3, 4, 5, 6];
        float[] b = [0.5f, 0.25f, -3, 8, 1e6f, -6];
        var z = new float[6];
        Array.Fill(z, float.NaN);
        using var x = OrtValue.CreateTensor(a, [2, 3]);
        using var y = OrtValue.CreateTensor(b, [2, 3]);
        using var zv = OrtValue.CreateTensor(z, [2, 3]);
        var elapsed = session.RunInto([KeyValuePair.Create("x", x), KeyValuePair.Create("y", y)], [KeyValuePair.Create("z", zv)]);
        Assert.Equal(a.Zip(b, (p, q) => p + q).ToArray(), z);
        Assert.True(elapsed > TimeSpan.Zero);

        using var wrong = OrtValue.CreateTensor(new float[4], [2, 2]);
        var e = Assert.Throws<OrtException>(() => session.RunInto([KeyValuePair.Create("x", x), KeyValuePair.Create("y", y)], [KeyValuePair.Create("z", wrong)]));
        Assert.Equal("Run", e.Operation);
        // The caller's output survived the failed run and is still usable.
        Assert.Equal(4, wrong.GetTensorData<float>().Length);
    }

    [OnnxRuntimeFact]
    public void Session_settings_are_applied_and_the_optimized_model_is_written()
    {
        using var dir = new TempDir();
        var optimized = dir.File("optimized.onnx");
        var settings = new OrtSessionSettings
        {
            IntraOpThreads = 1,
            InterOpThreads = 1,
            OptimizationLevel = OrtGraphOptimizationLevel.Basic,
            OptimizedModelPath = optimized,
            MemoryPattern = false,
            CpuArena = false,
        };
        using var session = OrtSession.FromBytes(OrtTestModels.Add(), settings);
        Assert.True(File.Exists(optimized));
        // The written model parses with the project's schema and still holds the Add node.
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(optimized));
        Assert.Contains(model.Graph.Node, n => n.OpType == "Add");
        Assert.Throws<ArgumentException>(() => OrtSession.FromBytes(OrtTestModels.Add(), new OrtSessionSettings { IntraOpThreads = -1 }));
    }

    /// <summary>ProfilePrefix: ORT writes its Chrome-trace JSON when the session closes, one kernel event per node run.</summary>
    [OnnxRuntimeFact]
    public void A_profiled_session_writes_one_kernel_event_per_node_run()
    {
        using var dir = new TempDir();
        using (var session = OrtSession.FromBytes(OrtTestModels.Add(), new OrtSessionSettings { IntraOpThreads = 1, ProfilePrefix = dir.File("add") }))
        {
            using var x = OrtValue.CreateTensor(new float[] { 1, 2, 3, 4, 5, 6 }, [2, 3]);
            for (int i = 0; i < 3; i++)
            {
                using var result = session.Run(("x", x), ("y", x));
                Assert.Equal(12f, result["z"].GetTensorData<float>()[5]);
            }
        }
        var file = Assert.Single(Directory.GetFiles(dir.Path, "add_*.json"));
        using var trace = System.Text.Json.JsonDocument.Parse(File.ReadAllText(file));
        var kernels = trace.RootElement.EnumerateArray()
            .Where(e => e.GetProperty("cat").GetString() == "Node" && e.GetProperty("name").GetString()!.EndsWith("_kernel_time", StringComparison.Ordinal))
            .ToList();
        Assert.Equal(3, kernels.Count);
        Assert.All(kernels, k => Assert.Equal("Add", k.GetProperty("args").GetProperty("op_name").GetString()));
    }

    [OnnxRuntimeFact]
    public void Ort_failures_become_one_exception_type_with_the_code_and_message()
    {
        var garbage = OrtAssert<OrtException>(() => OrtSession.FromBytes("this is not an onnx model"u8));
        Assert.Equal(OrtErrorCode.InvalidProtobuf, garbage.ErrorCode);
        Assert.Equal(ExitCodes.BadInput, garbage.ExitCode);
        Assert.Contains("CreateSessionFromArray", garbage.Message);

        using var session = OrtSession.FromBytes(OrtTestModels.Add());
        using var x = OrtValue.CreateTensor(new float[6], [2, 3]);
        var wrongName = OrtAssert<OrtException>(() => session.Run(("nope", x), ("y", x)));
        Assert.Equal(OrtErrorCode.InvalidArgument, wrongName.ErrorCode);
        Assert.Contains("nope", wrongName.OrtMessage);
        Assert.Equal(ExitCodes.InternalFailure, wrongName.ExitCode);

        using var wrongShape = OrtValue.CreateTensor(new float[4], [2, 2]);
        Assert.Equal(OrtErrorCode.InvalidArgument, OrtAssert<OrtException>(() => session.Run(("x", wrongShape), ("y", x))).ErrorCode);

        var missing = Assert.Throws<BadInputException>(() => OrtSession.FromFile("/nonexistent/model.onnx"));
        Assert.Contains("/nonexistent/model.onnx", missing.Message);
    }

    private static TException OrtAssert<TException>(Action action) where TException : Exception => Assert.Throws<TException>(action);

    [OnnxRuntimeFact]
    public void Tensor_arguments_are_checked_before_reaching_ort()
    {
        Assert.Throws<ArgumentException>(() => OrtValue.CreateTensor(new float[5], [2, 3]));
        Assert.Throws<ArgumentException>(() => OrtValue.CreateTensor(new float[6], [-2, -3]));
        Assert.Throws<ArgumentException>(() => OrtValue.Allocate(OrtElementType.Float, [1L << 40, 1L << 40]));
        Assert.Throws<ArgumentException>(() => OrtValue.CreateTensor(new ushort[6], [2, 3], OrtElementType.Float));
        Assert.Throws<ArgumentException>(() => OrtValue.CreateStringTensor(["a\0b"], [1]));
        using var value = OrtValue.CreateTensor(new int[6], [2, 3]);
        Assert.Throws<InvalidOperationException>(() => value.GetTensorData<long>());
        Assert.Throws<InvalidOperationException>(() => value.GetStrings());
        using var empty = OrtValue.CreateTensor(Array.Empty<float>(), [0, 3]);
        Assert.Equal([0L, 3L], empty.Shape);
        Assert.True(empty.GetTensorData<float>().IsEmpty);
    }

    [OnnxRuntimeFact]
    public void Disposing_the_session_while_values_live_is_safe()
    {
        var session = OrtSession.FromBytes(OrtTestModels.Add());
        var x = OrtValue.CreateTensor(new float[] { 1, 2, 3, 4, 5, 6 }, [2, 3]);
        var y = OrtValue.CreateTensor(new float[] { 6, 5, 4, 3, 2, 1 }, [2, 3]);
        var result = session.Run(("x", x), ("y", y));
        session.Dispose();
        session.Dispose();

        // Outputs belong to ORT's allocator, not the session: still readable after the session is gone.
        Assert.All(result["z"].GetTensorData<float>().ToArray(), v => Assert.Equal(7f, v));
        Assert.Throws<ObjectDisposedException>(() => session.Run(("x", x), ("y", y)));
        result.Dispose();
        result.Dispose();
        x.Dispose();
        Assert.Throws<ObjectDisposedException>(() => x.GetTensorData<float>());
        y.Dispose();

        // A value disposed before a run is rejected, not read after free.
        using var again = OrtSession.FromBytes(OrtTestModels.Add());
        Assert.Throws<ObjectDisposedException>(() => again.Run(("x", x), ("y", y)));

        // Many sessions and values created and dropped without Dispose are released by their finalizers.
        var oneThread = new OrtSessionSettings { IntraOpThreads = 1 };
        for (int i = 0; i < 20; i++)
        {
            var s = OrtSession.FromBytes(OrtTestModels.Add(), oneThread);
            var v = OrtValue.CreateTensor(new float[6], [2, 3]);
            _ = s.Run(("x", v), ("y", v));
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}
