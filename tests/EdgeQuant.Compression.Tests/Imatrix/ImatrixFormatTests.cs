using System.Buffers.Binary;
using System.Text;
using EdgeQuant.Compression.Imatrix;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Testing;

namespace EdgeQuant.Compression.Tests.Imatrix;

/// <summary>
/// Both llama.cpp imatrix layouts: round trips, the exact GGUF layout llama-imatrix writes, the .dat arithmetic of
/// save_imatrix_legacy, and llama-quantize's normalization recomputed here from the stored numbers.
/// </summary>
public sealed class ImatrixFormatTests
{
    /// <summary>Three dense weights (one sharing its input with another) and a 3-expert weight with an unseen expert.</summary>
    internal static ImportanceMatrix Sample()
    {
        var rng = new Random(7);
        float[] Sums(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 100)).ToArray();
        var q = Sums(8);
        return ImportanceMatrix.FromSums(
        [
            ("blk.0.attn_q.weight", q, [1536]),
            ("blk.0.attn_k.weight", (float[])q.Clone(), [1536]),
            ("blk.1.ffn_down.weight", Sums(12), [1536]),
            ("blk.0.ffn_up_exps.weight", Sums(3 * 4), [700, 0, 836]),
        ], ["data/train.txt"], chunkCount: 3, chunkSize: 512);
    }

    [Fact]
    public void Gguf_round_trip_keeps_every_number_and_rewrites_the_same_bytes()
    {
        using var dir = new TempDir();
        var m = Sample();
        var path = dir.File("a.imatrix.gguf");
        m.Write(path);
        var back = ImportanceMatrix.Read(path);
        Assert.Equal(ImatrixFormat.Gguf, back.Kind);
        Assert.Equal(m.TensorNames, back.TensorNames);
        Assert.Equal(["data/train.txt"], back.Datasets);
        Assert.Equal(3, back.ChunkCount);
        Assert.Equal(512, back.ChunkSize);
        foreach (var name in m.TensorNames)
        {
            Assert.Equal(m.Entry(name)!.Sums.ToArray(), back.Entry(name)!.Sums.ToArray());
            Assert.Equal(m.Entry(name)!.Counts.ToArray(), back.Entry(name)!.Counts.ToArray());
            Assert.Equal(m.ImportanceFor(name), back.ImportanceFor(name));
        }
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(bytes, m.Serialize());
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)), back.ContentSha256);
        Assert.Equal(back.ContentSha256, m.ContentSha256);
        var again = dir.File("b.gguf");
        back.Write(again);
        Assert.Equal(bytes, File.ReadAllBytes(again));
    }

    [Fact]
    public void Gguf_layout_is_llama_imatrix_s()
    {
        using var dir = new TempDir();
        var path = dir.File("a.gguf");
        Sample().Write(path);
        using var g = GgufReader.Read(path);
        Assert.Equal(["general.type", "imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"], g.Metadata.Select(kv => kv.Key));
        Assert.Equal("imatrix", g.Find("general.type")!.AsString());
        Assert.Equal(GgufValueType.UInt32, g.Find("imatrix.chunk_count")!.Type);
        Assert.Equal(GgufValueType.UInt32, g.Find("imatrix.chunk_size")!.Type);
        // std::sort over the names, then in_sum2 before counts.
        Assert.Equal(
        [
            "blk.0.attn_k.weight.in_sum2", "blk.0.attn_k.weight.counts",
            "blk.0.attn_q.weight.in_sum2", "blk.0.attn_q.weight.counts",
            "blk.0.ffn_up_exps.weight.in_sum2", "blk.0.ffn_up_exps.weight.counts",
            "blk.1.ffn_down.weight.in_sum2", "blk.1.ffn_down.weight.counts",
        ], g.Tensors.Select(t => t.Name));
        Assert.All(g.Tensors, t => Assert.Equal(TensorType.F32, t.Type));
        // ggml_new_tensor_2d(F32, nval / nmat, nmat) and (F32, 1, nmat), stored with ggml_n_dims dimensions
        // (trailing 1s dropped).
        Assert.Equal([4L, 3L], g.FindTensor("blk.0.ffn_up_exps.weight.in_sum2")!.Ne);
        Assert.Equal([1L, 3L], g.FindTensor("blk.0.ffn_up_exps.weight.counts")!.Ne);
        Assert.Equal([8L], g.FindTensor("blk.0.attn_q.weight.in_sum2")!.Ne);
        Assert.Equal([1L], g.FindTensor("blk.0.attn_q.weight.counts")!.Ne);
    }

    [Fact]
    public void Dat_write_is_save_imatrix_legacy_and_round_trips()
    {
        using var dir = new TempDir();
        var m = Sample();
        var path = dir.File("a.dat");
        m.Write(path, ImatrixFormat.Dat);
        var bytes = File.ReadAllBytes(path);

        // The file, decoded by hand: i32 n, records, i32 chunk count, i32 len + dataset.
        int p = 0;
        int I32() { int v = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(p)); p += 4; return v; }
        Assert.Equal(4, I32());
        foreach (var name in m.TensorNames)
        {
            int len = I32();
            Assert.Equal(name, Encoding.UTF8.GetString(bytes, p, len));
            p += len;
            var e = m.Entry(name)!;
            long maxCount = (long)e.Counts.ToArray().Max();
            int ncall = (int)((maxCount + 511) / 512);
            Assert.Equal(ncall, I32());
            Assert.Equal(e.Sums.Length, I32());
            for (int i = 0; i < e.Sums.Length; i++)
            {
                float count = (float)e.Counts[i / e.Columns], value = e.Sums[i];
                if (count == 0f) (value, count) = (1f, 1f);
                float expected = value / count * ncall;
                Assert.Equal(BitConverter.SingleToInt32Bits(expected), BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(p)));
                p += 4;
            }
        }
        Assert.Equal(3, I32());
        int dl = I32();
        Assert.Equal("data/train.txt", Encoding.UTF8.GetString(bytes, p, dl));
        Assert.Equal(bytes.Length, p + dl);

        var back = ImportanceMatrix.Read(path);
        Assert.Equal(ImatrixFormat.Dat, back.Kind);
        Assert.Equal(m.TensorNames, back.TensorNames);
        Assert.Equal(3, back.ChunkCount);
        Assert.Equal(0, back.ChunkSize);
        Assert.Equal(["data/train.txt"], back.Datasets);
        var again = dir.File("b.dat");
        back.Write(again, ImatrixFormat.Dat);
        Assert.Equal(bytes, File.ReadAllBytes(again));
        // Re-encoded from the parsed numbers rather than copied from the source bytes: still the same file.
        var rebuilt = ImportanceMatrix.Read(EdgeQuant.Formats.IO.MappedFile.FromBytes(bytes, "mem"));
        Assert.Equal(bytes, rebuilt.Serialize(ImatrixFormat.Dat));
    }

    [Fact]
    public void Legacy_to_gguf_multiplies_by_the_chunk_size_as_llama_imatrix_in_file_does()
    {
        using var dir = new TempDir();
        var dat = dir.File("a.dat");
        Sample().Write(dat, ImatrixFormat.Dat);
        var legacy = ImportanceMatrix.Read(dat);
        var gguf = dir.File("a.gguf");
        legacy.Write(gguf, ImatrixFormat.Gguf, legacyChunkSize: 256);
        var m = ImportanceMatrix.Read(gguf);
        Assert.Equal(256, m.ChunkSize);
        long maxNcall = 0;
        foreach (var name in legacy.TensorNames)
        {
            var l = legacy.Entry(name)!;
            var e = m.Entry(name)!;
            Assert.Equal(1, e.Matrices);
            Assert.Equal(l.Counts[0] * 256, e.Counts[0]);
            Assert.Equal(l.Sums.ToArray().Select(v => v * 256).ToArray(), e.Sums.ToArray());
            maxNcall = Math.Max(maxNcall, (long)l.Counts[0]);
        }
        Assert.Equal(maxNcall, m.ChunkCount);
        Assert.Equal(legacy.Datasets, m.Datasets);
    }

    [Fact]
    public void ImportanceFor_is_llama_quantize_s_normalization_of_a_gguf_file()
    {
        // Written with the GGUF writer directly (not through ImportanceMatrix) with counts that are not integers, so
        // lround's half-away-from-zero rounding matters: 2.5 -> 3, 3.49 -> 3, 0.4 -> 0 (a zero count: all ones).
        using var dir = new TempDir();
        var path = dir.File("hand.gguf");
        float[] sums = [1f, 2f, 3f, 4f, 5f, 6f, 7.5f, 1e-3f, 10f, 11f, 12f, 13f];
        float[] counts = [2.5f, 3.49f, 0.4f];
        WriteGguf(path, ("w.weight", sums, [3, 4], counts, [3, 1]));
        var m = ImportanceMatrix.Read(path);
        float[] expected = new float[12];
        for (int j = 0; j < 3; j++)
        {
            // quantize.cpp: const float count = (float) lround(stored count); sums / count, or 1 when count is 0.
            long rounded = j switch { 0 => 3, 1 => 3, _ => 0 };
            for (int i = 0; i < 4; i++) expected[j * 4 + i] = rounded > 0 ? sums[j * 4 + i] / (float)rounded : 1f;
        }
        Assert.Equal(expected, m.ImportanceFor("w.weight"));
        Assert.Null(m.ImportanceFor("w"));
        Assert.Null(m.ImportanceFor("missing.weight"));
    }

    [Fact]
    public void ImportanceFor_is_llama_quantize_s_normalization_of_a_legacy_file()
    {
        using var dir = new TempDir();
        var path = dir.File("hand.dat");
        float[] a = [3f, 6f, 0.1f], b = [5f, 7f];
        File.WriteAllBytes(path, Dat([("a.weight", 3, a), ("b.weight", 0, b)], chunkCount: 3, dataset: "x.txt"));
        var m = ImportanceMatrix.Read(path);
        // ncall > 0: sums / (float)ncall; ncall == 0: the stored values unchanged.
        Assert.Equal(a.Select(v => v / 3f).ToArray(), m.ImportanceFor("a.weight"));
        Assert.Equal(b, m.ImportanceFor("b.weight")!);
        Assert.Equal(["x.txt"], m.Datasets);
        Assert.Equal(3, m.ChunkCount);
    }

    [Fact]
    public void Older_legacy_files_without_the_trailer_are_read()
    {
        var bytes = Dat([("a.weight", 2, [1f, 2f])], chunkCount: null, dataset: null);
        var m = ImportanceMatrix.Read(EdgeQuant.Formats.IO.MappedFile.FromBytes(bytes, "old.dat"));
        Assert.Equal(0, m.ChunkCount);
        Assert.Empty(m.Datasets);
        Assert.Equal([0.5f, 1f], m.ImportanceFor("a.weight")!);
    }

    [Fact]
    public void Names_llama_cpp_cannot_read_back_are_refused_for_gguf_but_fine_for_dat()
    {
        var name = "blk.0." + new string('x', 49) + ".weight"; // 62 bytes; + ".in_sum2" = 70 >= GGML_MAX_NAME
        var m = ImportanceMatrix.FromSums([(name, [1f, 2f], [4])], [], 0, 512);
        var e = Assert.Throws<BadInputException>(() => m.Serialize(ImatrixFormat.Gguf));
        Assert.Contains("63 bytes", e.Message);
        Assert.Equal([name], ImportanceMatrix.Read(EdgeQuant.Formats.IO.MappedFile.FromBytes(m.Serialize(ImatrixFormat.Dat), "x.dat")).TensorNames);
        var ok = "blk.0." + new string('x', 42) + ".weight"; // + ".in_sum2" = 63 bytes
        var written = ImportanceMatrix.FromSums([(ok, [1f, 2f], [4])], [], 0, 512).Serialize();
        Assert.Equal([ok], ImportanceMatrix.Read(EdgeQuant.Formats.IO.MappedFile.FromBytes(written, "x.gguf")).TensorNames);
    }

    internal static void WriteGguf(string path, params (string Name, float[] Sums, long[] SumShape, float[] Counts, long[] CountShape)[] entries) =>
        WriteGguf(path, true, entries);

    internal static void WriteGguf(string path, bool metadata, params (string Name, float[] Sums, long[] SumShape, float[] Counts, long[] CountShape)[] entries)
    {
        var kvs = new List<KeyValuePair<string, GgufValue>>();
        if (metadata)
        {
            kvs.Add(new("general.type", "imatrix"));
            kvs.Add(new("imatrix.datasets", GgufValue.Array(["t.txt"])));
            kvs.Add(new("imatrix.chunk_count", 1u));
            kvs.Add(new("imatrix.chunk_size", 512u));
        }
        var tensors = new List<GgufTensorToWrite>();
        foreach (var (name, sums, sumShape, counts, countShape) in entries)
        {
            tensors.Add(GgufTensorToWrite.FromFloats(name + ".in_sum2", TensorType.F32, sumShape, () => sums));
            tensors.Add(GgufTensorToWrite.FromFloats(name + ".counts", TensorType.F32, countShape, () => counts));
        }
        GgufWriter.Write(path, kvs, tensors);
    }

    internal static byte[] Dat(IEnumerable<(string Name, int Ncall, float[] Values)> records, int? chunkCount, string? dataset)
    {
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        var list = records.ToList();
        w.Write(list.Count);
        foreach (var (name, ncall, values) in list)
        {
            var nb = Encoding.UTF8.GetBytes(name);
            w.Write(nb.Length);
            w.Write(nb);
            w.Write(ncall);
            w.Write(values.Length);
            foreach (var v in values) w.Write(v);
        }
        if (chunkCount is { } cc) w.Write(cc);
        if (dataset is not null)
        {
            var db = Encoding.UTF8.GetBytes(dataset);
            w.Write(db.Length);
            w.Write(db);
        }
        w.Flush();
        return ms.ToArray();
    }
}
