using EdgeQuant.Formats.IO;

namespace EdgeQuant.Formats.Llama2c;

/// <summary>The 28-byte header of a llama2.c checkpoint, after the sign of vocab_size has been read as the classifier flag.</summary>
public sealed record Llama2cHeader(int Dim, int HiddenDim, int Layers, int Heads, int KvHeads, int VocabSize, int SeqLen, bool SharedClassifier)
{
    public int HeadSize => Dim / Heads;
    public int KvDim => Dim * KvHeads / Heads;
}

/// <summary>One weight of the checkpoint, per layer where llama2.c stacks layers. Shape is row-major [out, in], as run.c's matmul reads it.</summary>
/// <param name="Name">llama2.c's field name, with the layer: <c>token_embedding_table</c>, <c>wq[3]</c>, <c>wcls</c>, …</param>
/// <param name="Layer">Layer index, or -1 for model-wide weights.</param>
/// <param name="Shape">Row-major shape.</param>
/// <param name="Offset">Absolute byte offset in the file.</param>
public sealed record Llama2cTensorInfo(string Name, string Field, int Layer, long[] Shape, long Offset)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
    public long ByteLength => ElementCount * sizeof(float);
}

/// <summary>An open llama2.c checkpoint: header plus F32 weights memory-mapped in place.</summary>
public sealed class Llama2cCheckpoint : IDisposable
{
    internal Llama2cCheckpoint(MappedFile file, Llama2cHeader header, List<Llama2cTensorInfo> tensors)
    {
        File = file;
        Header = header;
        Tensors = tensors;
    }

    public MappedFile File { get; }
    public string Path => File.Path;
    public Llama2cHeader Header { get; }

    /// <summary>Every weight in file order (freq_cis tables are skipped).</summary>
    public IReadOnlyList<Llama2cTensorInfo> Tensors { get; }

    public ReadOnlySpan<byte> GetBytes(Llama2cTensorInfo t) => File.Span(t.Offset, checked((int)t.ByteLength), t.Name);

    public void Dispose() => File.Dispose();
}

/// <summary>
/// Reads llama2.c's legacy checkpoint (run.c): 7 int32 header fields, then F32 weights in a fixed order:
/// token_embedding_table, rms_att_weight, wq, wk, wv, wo, rms_ffn_weight, w1, w2, w3 (each stacked over layers),
/// rms_final_weight, two RoPE tables of seq_len × head_size / 2 floats (skipped), and wcls when vocab_size is
/// negative (an unshared classifier). The file size must match the header exactly.
/// </summary>
public static class Llama2cReader
{
    public static Llama2cCheckpoint Open(string path) => Read(MappedFile.Open(path));

    /// <summary>Reads the checkpoint in <paramref name="file"/>, taking ownership (disposed on failure).</summary>
    public static Llama2cCheckpoint Read(MappedFile file)
    {
        try
        {
            var header = ReadHeader(file);
            var tensors = Layout(header, file);
            return new Llama2cCheckpoint(file, header, tensors);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public static Llama2cHeader ReadHeader(MappedFile file)
    {
        var c = new ByteCursor(file);
        if (file.Length >= 4 && file.Length < Llama2cConstants.HeaderBytes) c.Fail("header", $"file is {file.Length} bytes, shorter than the {Llama2cConstants.HeaderBytes}-byte header");
        uint magic = file.Length >= 4 ? System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(file.Span(0, 4, "header")) : 0;
        if (magic == Llama2cConstants.VersionedMagic)
            c.Fail("magic", "this is a llama2.c export of version 1 or 2 ('ak42' magic); only the legacy version-0 checkpoint is read");
        int dim = Field(c, "dim", 1, Llama2cConstants.MaxDim);
        int hidden = Field(c, "hidden_dim", 1, Llama2cConstants.MaxHiddenDim);
        int layers = Field(c, "n_layers", 1, Llama2cConstants.MaxLayers);
        int heads = Field(c, "n_heads", 1, dim);
        int kvHeads = Field(c, "n_kv_heads", 1, heads);
        long vocabOffset = c.Position;
        int vocab = c.ReadI32("vocab_size");
        if (vocab == 0 || vocab == int.MinValue || Math.Abs(vocab) > Llama2cConstants.MaxVocab)
            c.FailAt(vocabOffset, "vocab_size", $"{vocab} is outside ±1..{Llama2cConstants.MaxVocab} (negative means an unshared classifier)");
        int seqLen = Field(c, "seq_len", 1, Llama2cConstants.MaxSeqLen);
        if (dim % heads != 0) c.FailAt(12, "n_heads", $"{heads} does not divide dim {dim}");
        if (heads % kvHeads != 0) c.FailAt(16, "n_kv_heads", $"{kvHeads} does not divide n_heads {heads}");
        return new Llama2cHeader(dim, hidden, layers, heads, kvHeads, Math.Abs(vocab), seqLen, SharedClassifier: vocab > 0);
    }

    private static int Field(ByteCursor c, string name, int min, int max)
    {
        long at = c.Position;
        int v = c.ReadI32(name);
        if (v < min || v > max) c.FailAt(at, name, $"{v} is outside {min}..{max}");
        return v;
    }

    /// <summary>Byte size of the whole file the header implies.</summary>
    public static long ExpectedFileSize(Llama2cHeader h)
    {
        long floats = checked(WeightFloats(h) + 2L * h.SeqLen * (h.HeadSize / 2));
        return checked(Llama2cConstants.HeaderBytes + floats * sizeof(float));
    }

    private static long WeightFloats(Llama2cHeader h)
    {
        long dim = h.Dim, hid = h.HiddenDim, L = h.Layers, kv = h.KvDim, v = h.VocabSize;
        return checked(v * dim + L * dim + L * dim * dim + 2 * L * kv * dim + L * dim * dim + L * dim + 3 * L * hid * dim + dim
                       + (h.SharedClassifier ? 0 : v * dim));
    }

    private static List<Llama2cTensorInfo> Layout(Llama2cHeader h, MappedFile file)
    {
        long expected = ExpectedFileSize(h);
        if (file.Length != expected)
            throw new Core.Errors.FileFormatException(file.Path, "file size", Math.Min(file.Length, expected),
                $"the header (dim {h.Dim}, hidden_dim {h.HiddenDim}, n_layers {h.Layers}, n_heads {h.Heads}, n_kv_heads {h.KvHeads}, " +
                $"vocab_size {(h.SharedClassifier ? h.VocabSize : -h.VocabSize)}, seq_len {h.SeqLen}) implies {expected} bytes but the file has {file.Length}" +
                (file.Length < expected ? " (truncated?)" : " (trailing bytes, or a header that does not belong to these weights)"));

        var list = new List<Llama2cTensorInfo>();
        long at = Llama2cConstants.HeaderBytes;
        void Add(string field, int layer, params long[] shape)
        {
            var t = new Llama2cTensorInfo(layer < 0 ? field : $"{field}[{layer}]", field, layer, shape, at);
            list.Add(t);
            at += t.ByteLength;
        }
        void Stacked(string field, params long[] shape)
        {
            for (int l = 0; l < h.Layers; l++) Add(field, l, shape);
        }
        Add("token_embedding_table", -1, h.VocabSize, h.Dim);
        Stacked("rms_att_weight", h.Dim);
        Stacked("wq", h.Dim, h.Dim);
        Stacked("wk", h.KvDim, h.Dim);
        Stacked("wv", h.KvDim, h.Dim);
        Stacked("wo", h.Dim, h.Dim);
        Stacked("rms_ffn_weight", h.Dim);
        Stacked("w1", h.HiddenDim, h.Dim);
        Stacked("w2", h.Dim, h.HiddenDim);
        Stacked("w3", h.HiddenDim, h.Dim);
        Add("rms_final_weight", -1, h.Dim);
        // freq_cis_real and freq_cis_imag: RoPE tables the legacy export still writes; run.c skips them too.
        at += 2L * h.SeqLen * (h.HeadSize / 2) * sizeof(float);
        if (!h.SharedClassifier) Add("wcls", -1, h.VocabSize, h.Dim);
        return list;
    }
}
