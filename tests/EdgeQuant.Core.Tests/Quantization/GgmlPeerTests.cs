using System.Runtime.InteropServices;
using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Testing;

namespace EdgeQuant.Core.Tests.Quantization;

/// <summary>
/// The real ggml as a peer: <c>libggml-base</c> from npm <c>@node-llama-cpp/linux-x64@3.22.1</c> (fetched by
/// <c>make runtimes</c> into <c>runtimes/&lt;rid&gt;/native</c>, or found through <c>EDGEQUANT_RUNTIMES</c>) exports its
/// reference quantizers (<c>quantize_row_*_ref</c>) and dequantizers (<c>dequantize_row_*</c>, ggml-quants.h).
/// </summary>
internal static unsafe class GgmlNative
{
    private static readonly Lazy<nint> Handle = new(Load);

    public static string? LibraryPath { get; } = Find();

    private static string? Find()
    {
        string rid = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        const string File = "libggml-base.so";
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("EDGEQUANT_RUNTIMES") is { Length: > 0 } env)
        {
            candidates.Add(Path.Combine(env, rid, "native", File));
            candidates.Add(Path.Combine(env, File));
        }
        else
        {
            candidates.Add(Path.Combine(SharedData.RepoRoot, "runtimes", rid, "native", File));
        }
        return OperatingSystem.IsLinux() ? candidates.FirstOrDefault(System.IO.File.Exists) : null;
    }

    private static nint Load() =>
        NativeLibrary.Load(LibraryPath ?? throw new FileNotFoundException("libggml-base.so not found: run `make runtimes` or set EDGEQUANT_RUNTIMES"));

    public static string Suffix(TensorType type) => TensorTypes.Get(type).Name.ToLowerInvariant().Replace("_k", "_K", StringComparison.Ordinal);

    /// <summary>ggml's <c>dequantize_row_&lt;type&gt;(const block *x, float *y, int64_t k)</c>.</summary>
    public static void DequantizeRow(TensorType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        var fn = (delegate* unmanaged<byte*, float*, long, void>)NativeLibrary.GetExport(Handle.Value, "dequantize_row_" + Suffix(type));
        fixed (byte* x = src)
        fixed (float* y = dst)
            fn(x, y, dst.Length);
    }

    /// <summary>ggml's <c>quantize_row_&lt;type&gt;_ref(const float *x, block *y, int64_t k)</c>.</summary>
    public static byte[] QuantizeRowReference(TensorType type, ReadOnlySpan<float> src)
    {
        var info = TensorTypes.Get(type);
        var dst = new byte[src.Length / info.BlockSize * info.BlockBytes];
        var fn = (delegate* unmanaged<float*, byte*, long, void>)NativeLibrary.GetExport(Handle.Value, "quantize_row_" + Suffix(type) + "_ref");
        fixed (float* x = src)
        fixed (byte* y = dst)
            fn(x, y, src.Length);
        return dst;
    }
}

/// <summary>Runs when the pinned libggml-base is present; skipped without it, failed without it under CI=true.</summary>
public sealed class GgmlTheoryAttribute : TheoryAttribute
{
    public GgmlTheoryAttribute()
    {
        if (GgmlNative.LibraryPath is null && !SharedData.IsCi)
            Skip = "libggml-base.so not found (run `make runtimes` or set EDGEQUANT_RUNTIMES); under CI=true this fails instead";
    }
}

public class GgmlPeerTests
{
    public static TheoryData<TensorType> Types => new()
    {
        TensorType.Q4_0, TensorType.Q4_1, TensorType.Q5_0, TensorType.Q5_1, TensorType.Q8_0,
        TensorType.Q2_K, TensorType.Q3_K, TensorType.Q4_K, TensorType.Q5_K, TensorType.Q6_K, TensorType.Q8_K,
    };

    [GgmlTheory]
    [MemberData(nameof(Types))]
    public void Random_blocks_dequantize_exactly_as_ggml_does(TensorType type)
    {
        var info = TensorTypes.Get(type);
        const int Blocks = 40;
        var src = DequantizeTests.RandomBlocks(type, Blocks, new Random(500 + (int)type));
        var ours = new float[Blocks * info.BlockSize];
        var theirs = new float[ours.Length];
        Dequantize.Row(type, src, ours);
        GgmlNative.DequantizeRow(type, src, theirs);
        AssertBitwiseEqual(type, theirs, ours);
    }

    [GgmlTheory]
    [MemberData(nameof(Types))]
    public void Blocks_quantized_by_ggml_dequantize_exactly_as_ggml_does(TensorType type)
    {
        var info = TensorTypes.Get(type);
        var rng = new Random(900 + (int)type);
        // Gaussian-ish weights with a few outliers, as real weight rows have.
        var x = new float[16 * info.BlockSize];
        for (int i = 0; i < x.Length; i++)
            x[i] = (float)((rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * (i % 97 == 0 ? 0.5 : 0.05));
        var q = GgmlNative.QuantizeRowReference(type, x);
        var ours = new float[x.Length];
        var theirs = new float[x.Length];
        Dequantize.Row(type, q, ours);
        GgmlNative.DequantizeRow(type, q, theirs);
        AssertBitwiseEqual(type, theirs, ours);
        // And the round trip is a quantization of x, not noise: the error is well under the signal.
        double err = 0, sig = 0;
        for (int i = 0; i < x.Length; i++) { err += (ours[i] - x[i]) * (ours[i] - x[i]); sig += x[i] * x[i]; }
        Assert.True(err < 0.2 * sig, $"{type}: relative squared error {err / sig}");
    }

    private static void AssertBitwiseEqual(TensorType type, float[] expected, float[] actual)
    {
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{type} element {i}: ggml {expected[i]:R}, ours {actual[i]:R}");
    }
}
