using System.Buffers.Binary;
using System.Runtime.InteropServices;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Formats.IO;

namespace EdgeQuant.Compression.Imatrix;

/// <summary>
/// llama-imatrix's GGUF format (tools/imatrix/imatrix.cpp <c>save_imatrix</c>, common/imatrix-loader.cpp
/// <c>common_imatrix_load</c>): keys <c>general.type = "imatrix"</c>, <c>imatrix.datasets</c> (string array),
/// <c>imatrix.chunk_count</c> and <c>imatrix.chunk_size</c> (u32); per weight <c>NAME.in_sum2</c> (F32, ne =
/// [columns, matrices]: raw sums of squared activations) and <c>NAME.counts</c> (F32, ne = [1, matrices]: rows summed).
/// </summary>
internal static class ImatrixGguf
{
    public const string TypeKey = "general.type";
    public const string TypeValue = "imatrix";
    public const string DatasetsKey = "imatrix.datasets";
    public const string ChunkCountKey = "imatrix.chunk_count";
    public const string ChunkSizeKey = "imatrix.chunk_size";
    public const string SumsSuffix = ".in_sum2";
    public const string CountsSuffix = ".counts";

    /// <summary>Counts above this cannot come from a real run and would overflow lround's int64 in llama.cpp.</summary>
    private const double MaxCount = 1L << 53;

    /// <summary>GGML_MAX_NAME: tensor names must be shorter.</summary>
    private const int MaxGgmlName = 64;

    public static ImportanceMatrix.Parsed Read(MappedFile file)
    {
        using var gguf = GgufReader.Read(file);
        string path = file.Path;

        var typeEntry = gguf.FindEntry(TypeKey);
        var datasetsEntry = gguf.FindEntry(DatasetsKey);
        var countEntry = gguf.FindEntry(ChunkCountKey);
        var sizeEntry = gguf.FindEntry(ChunkSizeKey);
        if (countEntry is null || sizeEntry is null || datasetsEntry is null)
        {
            string what = typeEntry?.Value.AsString() is { } t && t != TypeValue ? $"a GGUF of general.type '{t}', not an importance matrix" :
                "missing imatrix metadata (llama-quantize refuses such a file)";
            string key = datasetsEntry is null ? DatasetsKey : countEntry is null ? ChunkCountKey : ChunkSizeKey;
            // Where the metadata ends: the key would have been there.
            long end = gguf.Tensors.Count > 0 ? gguf.Tensors[0].InfoOffset : gguf.InfosEnd;
            throw new FileFormatException(path, $"metadata key '{key}'", end, what);
        }
        if (datasetsEntry.Value is not { IsArray: true, ElementType: GgufValueType.String } || datasetsEntry.Value.AsArray<string>() is not { } datasets)
            throw new FileFormatException(path, $"metadata key '{DatasetsKey}'", datasetsEntry.Offset, $"must be an array of strings, not {datasetsEntry.Value.Type}");
        int chunkCount = U32(path, countEntry), chunkSize = U32(path, sizeEntry);

        var sums = new Dictionary<string, GgufTensorInfo>(StringComparer.Ordinal);
        var counts = new Dictionary<string, GgufTensorInfo>(StringComparer.Ordinal);
        foreach (var t in gguf.Tensors)
        {
            // Other tensors are ignored, as common_imatrix_load does.
            if (t.Name.EndsWith(SumsSuffix, StringComparison.Ordinal)) sums[t.Name[..^SumsSuffix.Length]] = t;
            else if (t.Name.EndsWith(CountsSuffix, StringComparison.Ordinal)) counts[t.Name[..^CountsSuffix.Length]] = t;
        }
        foreach (var (name, t) in counts)
            if (!sums.ContainsKey(name)) throw new FileFormatException(path, $"tensor '{t.Name}'", t.InfoOffset, $"has no '{name}{SumsSuffix}' beside it");
        if (sums.Count == 0)
            throw new FileFormatException(path, "tensors", gguf.InfosEnd, $"no '*{SumsSuffix}' / '*{CountsSuffix}' tensors: the importance matrix is empty");

        var map = ImportanceMatrix.NewMap();
        foreach (var (name, s) in sums.OrderBy(p => p.Value.InfoOffset))
        {
            if (name.Length == 0) throw new FileFormatException(path, $"tensor '{s.Name}'", s.InfoOffset, "empty weight name");
            if (!counts.TryGetValue(name, out var c))
                throw new FileFormatException(path, $"tensor '{s.Name}'", s.InfoOffset, $"has no '{name}{CountsSuffix}' beside it");
            RequireF32(path, s);
            RequireF32(path, c);
            long nval = s.ElementCount, ncounts = c.ElementCount;
            if (nval % ncounts != 0)
                throw new FileFormatException(path, $"tensor '{c.Name}'", c.InfoOffset,
                    $"{ncounts} counts do not divide the {nval} sums of '{s.Name}' into equal matrices");
            // in_sum2 is [columns, matrices] (ne order); anything with more than one dimension must agree with the counts.
            long matricesInShape = 1;
            for (int d = 1; d < s.Ne.Count; d++) matricesInShape *= s.Ne[d];
            if (s.Ne.Count > 1 && matricesInShape != ncounts)
                throw new FileFormatException(path, $"tensor '{s.Name}'", s.InfoOffset,
                    $"shape [{string.Join(", ", s.Shape)}] holds {matricesInShape} matrices but '{c.Name}' has {ncounts} counts");
            var countValues = Floats(gguf, c);
            var countArray = new double[countValues.Length];
            for (int j = 0; j < countValues.Length; j++)
            {
                float v = countValues[j];
                if (!float.IsFinite(v) || v < 0 || v > MaxCount)
                    throw new FileFormatException(path, $"tensor '{c.Name}' element {j}", c.AbsoluteOffset + 4L * j,
                        $"count {v} is not a finite number of rows in 0..2^53");
                countArray[j] = v;
            }
            var sumValues = Floats(gguf, s);
            for (int i = 0; i < sumValues.Length; i++)
            {
                float v = sumValues[i];
                // Non-finite values make llama-quantize stop; a negative sum of squares is a corrupt file.
                if (!float.IsFinite(v) || v < 0)
                    throw new FileFormatException(path, $"tensor '{s.Name}' element {i}", s.AbsoluteOffset + 4L * i,
                        $"{v} is not a sum of squares (finite, non-negative)");
            }
            map.Add(name, new ImatrixEntry(name, sumValues, countArray));
        }
        return new ImportanceMatrix.Parsed(map, datasets, chunkCount, chunkSize);
    }

    private static int U32(string path, GgufKeyValue kv)
    {
        // gguf_get_val_u32 asserts the type, so llama.cpp would abort on anything else.
        if (kv.Value.Type != GgufValueType.UInt32 || kv.Value.Value is not uint v)
            throw new FileFormatException(path, $"metadata key '{kv.Key}'", kv.Offset, $"must be a uint32, not {kv.Value.Type}");
        if (v > int.MaxValue) throw new FileFormatException(path, $"metadata key '{kv.Key}'", kv.Offset, $"{v} is out of range");
        return (int)v;
    }

    private static void RequireF32(string path, GgufTensorInfo t)
    {
        if (t.Type != TensorType.F32)
            throw new FileFormatException(path, $"tensor '{t.Name}'", t.InfoOffset, $"must be F32 (llama.cpp reads no other type), not {t.Type}");
    }

    private static float[] Floats(GgufFile gguf, GgufTensorInfo t)
    {
        var bytes = gguf.TensorData(t);
        var result = new float[bytes.Length / 4];
        if (BitConverter.IsLittleEndian) MemoryMarshal.Cast<byte, float>(bytes).CopyTo(result);
        else for (int i = 0; i < result.Length; i++) result[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(4 * i)..]);
        return result;
    }

    /// <summary>
    /// The GGUF bytes llama-imatrix's save_imatrix writes for this matrix: metadata in its order, tensors by sorted
    /// weight name, in_sum2 then counts. A legacy matrix is first converted as llama-imatrix --in-file does.
    /// </summary>
    public static byte[] Serialize(ImportanceMatrix m, int legacyChunkSize)
    {
        var entries = new List<(string Name, float[] Sums, float[] Counts, int Matrices)>();
        int chunkCount = m.ChunkCount, chunkSize = m.ChunkSize;
        if (m.Kind == ImatrixFormat.Dat)
        {
            // load_imatrix: values += sums * chunk_size, counts += ncall * chunk_size; m_last_chunk = max count / chunk_size.
            long maxCount = 0;
            foreach (var e in m.Entries)
            {
                var v = new float[e.SumsArray.Length];
                for (int i = 0; i < v.Length; i++) v[i] = e.SumsArray[i] * legacyChunkSize;
                long count = (long)e.CountsArray[0] * legacyChunkSize;
                maxCount = Math.Max(maxCount, count);
                entries.Add((e.Name, v, [count], 1));
            }
            chunkSize = legacyChunkSize;
            chunkCount = (int)(maxCount / legacyChunkSize);
        }
        else
        {
            foreach (var e in m.Entries)
                entries.Add((e.Name, e.SumsArray, e.CountsArray.Select(c => (float)c).ToArray(), e.Matrices));
        }

        var metadata = new List<KeyValuePair<string, GgufValue>>
        {
            new(TypeKey, GgufValue.From(TypeValue)),
            new(DatasetsKey, GgufValue.Array(m.Datasets.ToArray())),
            new(ChunkCountKey, GgufValue.From((uint)chunkCount)),
            new(ChunkSizeKey, GgufValue.From((uint)chunkSize)),
        };
        var tensors = new List<GgufTensorToWrite>();
        foreach (var (name, sums, counts, matrices) in entries)
        {
            // gguf.cpp refuses tensor names of GGML_MAX_NAME (64) bytes or more, so llama.cpp could not read the file.
            if (System.Text.Encoding.UTF8.GetByteCount(name + SumsSuffix) >= MaxGgmlName)
                throw new BadInputException($"'{name}': '{name}{SumsSuffix}' is longer than the {MaxGgmlName - 1} bytes llama.cpp accepts in a GGUF tensor name");
            var s = sums;
            var c = counts;
            // gguf.cpp stores ggml_n_dims, which drops trailing dimensions of 1: a dense weight's in_sum2 [columns, 1]
            // is written as 1-D [columns] and its counts as [1].
            long[] sumShape = matrices == 1 ? [s.Length] : [matrices, s.Length / matrices];
            long[] countShape = matrices == 1 ? [1] : [matrices, 1];
            tensors.Add(GgufTensorToWrite.FromFloats(name + SumsSuffix, TensorType.F32, sumShape, () => s));
            tensors.Add(GgufTensorToWrite.FromFloats(name + CountsSuffix, TensorType.F32, countShape, () => c));
        }
        using var ms = new MemoryStream();
        GgufWriter.Write(ms, "imatrix", metadata, tensors);
        return ms.ToArray();
    }
}
