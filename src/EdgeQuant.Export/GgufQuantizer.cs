using System.Diagnostics;
using EdgeQuant.Compression.GgufQuant;
using EdgeQuant.Compression.Imatrix;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Quantization;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Models;
using EdgeQuant.Models.Loading;

namespace EdgeQuant.Export;

public sealed record GgufQuantizeOptions
{
    /// <summary>The llama.cpp file type (mix) to produce, e.g. Q4_K_M.</summary>
    public required QuantFileType FileType { get; init; }

    /// <summary>--pure, --leave-output-tensor, output/embedding types and per-tensor overrides, as llama-quantize takes them.</summary>
    public QuantizationPolicyOptions Policy { get; init; } = new();

    /// <summary>Per-column importance for the weighted quantizers (llama-quantize --imatrix).</summary>
    public ImportanceMatrix? Imatrix { get; init; }

    /// <summary>The imatrix file's name, recorded as <c>quantize.imatrix.file</c>.</summary>
    public string? ImatrixFile { get; init; }

    /// <summary>Quantizer threads; 0 uses every core.</summary>
    public int Threads { get; init; }

    /// <summary>general.name; null keeps the source's.</summary>
    public string? Name { get; init; }

    public bool Overwrite { get; init; }

    public bool AllowNonFinite { get; init; }

    /// <summary>Quantize tensors that already are quantized (through F32), as llama-quantize --allow-requantize.</summary>
    public bool AllowRequantize { get; init; }

    /// <summary>Called after each tensor with (tensors done, tensors in all, the tensor just written).</summary>
    public Action<int, int, QuantizedTensor>? TensorWritten { get; init; }
}

/// <summary>One tensor of the output: its name, shape (row-major, row length last), source and written type.</summary>
public sealed record QuantizedTensor(string Name, long[] Shape, TensorType SourceType, TensorType Type, long SourceBytes, long Bytes, bool UsedImatrix, string? Note);

public sealed record GgufQuantizeResult(string Path, QuantFileType FileType, long FileBytes, long SourceTensorBytes, long TensorBytes,
    IReadOnlyList<QuantizedTensor> Tensors, int Fallbacks, string SourceSha256, string? CalibrationSha256, TimeSpan Elapsed)
{
    /// <summary>Bits per weight of the tensor data, as llama-quantize prints it.</summary>
    public double BitsPerWeight => TensorBytes * 8.0 / Tensors.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));
}

/// <summary>
/// A model → a quantized GGUF as <c>llama_model_quantize</c> writes it: the same tensor order (non-block tensors
/// first, then block by block, each group sorted by name), the same per-tensor types (<see cref="QuantizationPolicy"/>),
/// the same bytes (the quantizers in <see cref="Quantize"/> are ggml's, byte for byte), with EdgeQuant's metadata.
/// Streams one tensor at a time (its F32 copy and its quantized bytes are the only extra memory) into a temporary file
/// renamed at the end; cancellation or an error leaves nothing behind.
/// </summary>
public static class GgufQuantizer
{
    /// <summary>
    /// The SHA-256 of the importance matrix used (its stored content), so a file says which calibration it came from.
    /// </summary>
    public const string CalibrationHashKey = "edgequant.calibration_sha256";

    /// <summary>llama-quantize's keys describing the imatrix (tools/quantize/quantize.cpp).</summary>
    public const string ImatrixFileKey = "quantize.imatrix.file";
    public const string ImatrixDatasetKey = "quantize.imatrix.dataset";
    public const string ImatrixEntriesKey = "quantize.imatrix.entries_count";
    public const string ImatrixChunksKey = "quantize.imatrix.chunks_count";

    public static GgufQuantizeResult Quantize(Model model, string outputPath, GgufQuantizeOptions options, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        ExportPaths.CheckOutput(model.Provenance.SourcePath, outputPath, options.Overwrite);
        if (Directory.Exists(outputPath)) throw new BadInputException($"{outputPath}: is a folder; quantize writes one GGUF file");
        string source = model.Provenance.SourcePath;
        CanonicalTensors.CheckLayerWidths(model.Config, source);
        GgufExporter.ArchitectureName(model.Config);

        // llama_model_quantize's order (its loader's weight map), which its per-layer counters also follow.
        var order = QuantizationPolicy.LlamaQuantizeOrder(model.Tensors.Select(t => t.Name).ToList()).Select(i => model.Tensors[i]).ToList();
        foreach (var t in order) GgufExporter.CheckShape(model, t);
        var plan = QuantizationPolicy.Plan(model.Config,
            order.Select(t => (t.Name, t.Shape.Reverse().ToArray(), t.Type)).ToList(),
            options.FileType, options.Policy with { HasImatrix = options.Imatrix is not null });

        var jobs = new List<(ModelTensor Tensor, TensorType Type, bool Quantize, string? Note)>(order.Count);
        for (int i = 0; i < order.Count; i++)
        {
            var t = order[i];
            var p = plan.Tensors[i];
            if (p.Name != t.Name) throw new InternalFailureException($"quantization plan out of order at {i}: {p.Name} for {t.Name}");
            bool quantize = p.Quantize && p.Type != t.Type;
            var type = p.Type;
            if (!quantize)
                // Kept tensors: 1-D ones (norms, biases) are F32 in a GGUF whatever the checkpoint stored, as the converter
                // writes them, so an HF folder quantizes to the file that converting it first would give.
                type = t.Shape.Length <= 1 ? TensorType.F32 : GgufCopyType(t);
            else
            {
                if (TensorTypes.Get(t.Type).IsQuantized && !options.AllowRequantize)
                    throw new BadInputException(
                        $"{source}: tensor '{t.Name}' is already {TensorTypes.Get(t.Type).Name}; requantizing it to {TensorTypes.Get(type).Name} loses more accuracy than quantizing the original (quantize an F32/F16/BF16 model, or pass --allow-requantize)");
                if (!IsPlain(type) && !Core.Quantization.Quantize.IsSupported(type))
                    throw new BadInputException($"{source}: tensor '{t.Name}' would be {TensorTypes.Get(type).Name}, which EdgeQuant cannot quantize to yet");
            }
            jobs.Add((t, type, quantize, p.Note));
        }

        // The source hash is computed in the same pass as the quantization (each tensor hashed on another core while it
        // is converted and quantized) and patched into a fixed-width placeholder before the rename: no extra read pass.
        var placeholder = new string('0', 64);
        var md = GgufExporter.Metadata(model, options.Name, (uint)options.FileType.LlamaFtype, placeholder);
        string? calibration = null;
        if (options.Imatrix is { } im)
        {
            calibration = im.ContentSha256;
            md.Add(new(CalibrationHashKey, calibration));
            if (options.ImatrixFile is { } f) md.Add(new(ImatrixFileKey, Path.GetFileName(f)));
            if (im.Datasets.Count > 0) md.Add(new(ImatrixDatasetKey, string.Join(", ", im.Datasets)));
            md.Add(new(ImatrixEntriesKey, im.TensorNames.Count));
            md.Add(new(ImatrixChunksKey, im.ChunkCount));
        }

        using var hasher = new SourceHasher();
        var scratch = new Scratch();
        var written = new List<QuantizedTensor>(jobs.Count);
        var toWrite = jobs.Select(j => GgufTensorToWrite.FromStream(j.Tensor.Name, j.Type, j.Tensor.Shape, s =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            var hashing = Task.Run(() => hasher.Append(j.Tensor), cancellationToken);
            bool usedImatrix = false;
            ReadOnlyMemory<byte> bytes;
            try
            {
                // Plain targets (a fallback to F16, an F32 override) round as ggml_quantize_chunk does: nearest even.
                if (!j.Quantize || IsPlain(j.Type)) bytes = ExportTypes.Convert(j.Tensor, j.Type, options.AllowNonFinite, source);
                else
                {
                    var importance = ImportanceOf(options.Imatrix, j.Tensor, source);
                    usedImatrix = importance is not null;
                    bytes = QuantizeTensor(j.Tensor, j.Type, importance, options, source, scratch);
                }
            }
            finally
            {
                hashing.Wait(CancellationToken.None);
            }
            s.Write(bytes.Span);
            var q = new QuantizedTensor(j.Tensor.Name, j.Tensor.Shape, j.Tensor.Type, j.Type, j.Tensor.ByteLength, bytes.Length, usedImatrix, j.Note);
            written.Add(q);
            options.TensorWritten?.Invoke(written.Count, jobs.Count, q);
        }));

        string hash = "";
        GgufWriter.Write(outputPath, md, toWrite, beforeRename: temp =>
        {
            hash = hasher.Finish();
            long at = HashValueOffset(temp);
            using var fs = new FileStream(temp, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            fs.Position = at;
            var check = new byte[placeholder.Length];
            fs.ReadExactly(check);
            if (!check.AsSpan().SequenceEqual(System.Text.Encoding.ASCII.GetBytes(placeholder)))
                throw new InternalFailureException($"{temp}: the source hash placeholder is not where the metadata says");
            fs.Position = at;
            fs.Write(System.Text.Encoding.ASCII.GetBytes(hash));
        });

        return new GgufQuantizeResult(Path.GetFullPath(outputPath), options.FileType, new FileInfo(outputPath).Length,
            written.Sum(w => w.SourceBytes), written.Sum(w => w.Bytes), written, plan.Fallbacks, hash, calibration, clock.Elapsed);
    }

    /// <summary>Byte offset of the source hash string's characters in a just-written file.</summary>
    private static long HashValueOffset(string path)
    {
        using var file = GgufReader.Read(path);
        var entry = file.FindEntry(GgufExporter.SourceHashKey) ?? throw new InternalFailureException($"{path}: {GgufExporter.SourceHashKey} is missing");
        // key: u64 length + bytes; value type: u32; string: u64 length + bytes.
        return entry.Offset + 8 + System.Text.Encoding.UTF8.GetByteCount(entry.Key) + 4 + 8;
    }

    /// <summary>
    /// Buffers reused from tensor to tensor, as llama.cpp reuses its conversion and work buffers: a fresh multi-hundred-MB
    /// array per tensor costs page faults and zeroing comparable to the quantization itself.
    /// </summary>
    private sealed class Scratch
    {
        private float[] _floats = [];
        private byte[] _bytes = [];

        public float[] Floats(long n) => _floats.LongLength >= n ? _floats : _floats = GC.AllocateUninitializedArray<float>(checked((int)n));

        public byte[] Bytes(long n) => _bytes.LongLength >= n ? _bytes : _bytes = GC.AllocateUninitializedArray<byte>(checked((int)n));
    }

    /// <summary>
    /// The tensor as F32 in <paramref name="dst"/> (its first ElementCount floats), converted on every thread for plain
    /// sources; returns the index of the first NaN/Inf, or -1. Checking while converting reads the data once.
    /// </summary>
    private static unsafe long ToFloat32(ModelTensor t, float[] dst, int threads)
    {
        long n = t.ElementCount;
        var raw = t.RawBytes();
        if (t.Type is not (TensorType.F16 or TensorType.BF16 or TensorType.F32))
        {
            Dequantize.Row(t.Type, raw, dst.AsSpan(0, checked((int)n)));
            return FirstNonFinite(dst.AsSpan(0, (int)n));
        }
        int parts = n < (1 << 18) ? 1 : Math.Max(1, threads > 0 ? threads : Environment.ProcessorCount);
        long per = (n + parts - 1) / parts;
        var type = t.Type;
        var firstBad = new long[parts];
        fixed (byte* src = raw)
        {
            nint srcPtr = (nint)src;
            int elementBytes = type == TensorType.F32 ? 4 : 2;
            Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, p =>
            {
                long begin = p * per, end = Math.Min(n, begin + per);
                firstBad[p] = -1;
                if (begin >= end) return;
                var from = new ReadOnlySpan<byte>((byte*)srcPtr + begin * elementBytes, checked((int)((end - begin) * elementBytes)));
                var to = dst.AsSpan((int)begin, (int)(end - begin));
                if (type == TensorType.F16) HalfConversions.F16ToF32(from, to);
                else if (type == TensorType.BF16) HalfConversions.BF16ToF32(from, to);
                else System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(from).CopyTo(to);
                long bad = FirstNonFinite(to);
                firstBad[p] = bad < 0 ? -1 : begin + bad;
            });
        }
        foreach (long b in firstBad) if (b >= 0) return b;
        return -1;
    }

    /// <summary>Index of the first NaN or infinity (x - x is not 0 exactly for those), or -1.</summary>
    private static long FirstNonFinite(ReadOnlySpan<float> x)
    {
        int i = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            var v = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(x);
            for (; i < v.Length; i++)
                if (!System.Numerics.Vector.EqualsAll(v[i] - v[i], System.Numerics.Vector<float>.Zero)) break;
            i *= System.Numerics.Vector<float>.Count;
        }
        for (; i < x.Length; i++) if (!float.IsFinite(x[i])) return i;
        return -1;
    }

    private static bool IsPlain(TensorType t) => t is TensorType.F32 or TensorType.F16 or TensorType.BF16;

    private static TensorType GgufCopyType(ModelTensor t) =>
        t.Type is TensorType.F32 or TensorType.F16 or TensorType.BF16 || TensorTypes.Get(t.Type).IsQuantized ? t.Type : TensorType.F32;

    /// <summary>The imatrix entry for a tensor, checked as llama_model_quantize checks it.</summary>
    private static float[]? ImportanceOf(ImportanceMatrix? imatrix, ModelTensor t, string source)
    {
        if (imatrix?.ImportanceFor(t.Name) is not { } w) return null;
        long rowLength = t.Shape[^1];
        if (w.Length == rowLength) return w;
        // llama.cpp ignores a mismatched token_embd entry (an old imatrix may carry one) and refuses any other.
        if (t.Name == "token_embd.weight") return null;
        throw new BadInputException($"{source}: the importance matrix has {w.Length} entries for tensor '{t.Name}', whose rows have {rowLength} columns (an imatrix of another model?)");
    }

    private static ReadOnlyMemory<byte> QuantizeTensor(ModelTensor t, TensorType type, float[]? importance, GgufQuantizeOptions options, string source, Scratch scratch)
    {
        long count = t.ElementCount;
        var floats = scratch.Floats(count);
        long bad = ToFloat32(t, floats, options.Threads);
        if (bad >= 0 && !options.AllowNonFinite)
            throw new BadInputException($"{source}: tensor '{t.Name}' ({t.SourceName}) element {bad} is {floats[bad]}; refused (pass --allow-nonfinite to quantize it anyway)");
        long rowLength = t.Shape[^1];
        long rows = count / rowLength;
        var info = TensorTypes.Get(type);
        if (rowLength % info.BlockSize != 0)
            throw new InternalFailureException($"{t.Name}: rows of {rowLength} are not whole {info.Name} blocks; the policy should have fallen back");
        long size = checked(rows * (rowLength / info.BlockSize) * info.BlockBytes);
        var dst = scratch.Bytes(size);
        long n = Core.Quantization.Quantize.Rows(type, floats.AsSpan(0, (int)count), dst.AsSpan(0, (int)size), checked((int)rows), checked((int)rowLength), importance, options.Threads);
        if (n != size) throw new InternalFailureException($"{t.Name}: the {info.Name} quantizer wrote {n} bytes, expected {size}");
        return dst.AsMemory(0, (int)size);
    }
}
