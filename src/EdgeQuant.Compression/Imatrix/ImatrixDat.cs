using System.Buffers.Binary;
using System.Text;
using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.IO;

namespace EdgeQuant.Compression.Imatrix;

/// <summary>
/// llama.cpp's legacy imatrix file (<c>save_imatrix_legacy</c> / <c>common_imatrix_load_legacy</c>), little-endian:
/// <code>
/// i32 n_entries
/// n_entries × { i32 name_len | name bytes | i32 ncall | i32 nval | nval × f32 (sum / count) · ncall }
/// optional: i32 chunk_count | i32 dataset_len | dataset bytes
/// </code>
/// </summary>
internal static class ImatrixDat
{
    private const int MaxNameBytes = 1 << 16;
    private const int MaxDatasetBytes = 1 << 20;

    public static ImportanceMatrix.Parsed Read(MappedFile file)
    {
        var c = new ByteCursor(file);
        if (file.Length == 0) c.Fail("n_entries", "empty file: neither a GGUF nor a legacy imatrix");
        int n = c.ReadI32("n_entries");
        // Each entry takes at least 16 bytes (name length, ncall, nval and one value), so the count is checked
        // against the file before anything is allocated for it.
        if (n < 1 || n > c.Remaining / 16)
            c.FailAt(0, "n_entries", $"{n} entries cannot fit in a {file.Length}-byte file (not an imatrix file?)");
        var map = ImportanceMatrix.NewMap();
        for (int i = 0; i < n; i++)
        {
            long at = c.Position;
            string field = $"entry {i}";
            int len = c.ReadI32($"{field} name length");
            if (len < 1 || len > MaxNameBytes || len > c.Remaining)
                c.FailAt(at, $"{field} name length", $"{len} bytes do not fit in the {c.Remaining} bytes left (1..{MaxNameBytes})");
            var nameBytes = c.Take(len, $"{field} name");
            if (nameBytes.IndexOf((byte)0) >= 0) c.FailAt(at + 4, $"{field} name", "contains a NUL byte");
            string name = c.DecodeUtf8(nameBytes, $"{field} name", at + 4);
            field = $"entry {i} '{name}'";
            long ncallAt = c.Position;
            int ncall = c.ReadI32($"{field} ncall");
            if (ncall < 0) c.FailAt(ncallAt, $"{field} ncall", $"negative call count {ncall}");
            long nvalAt = c.Position;
            int nval = c.ReadI32($"{field} nval");
            if (nval < 1 || nval > c.Remaining / 4)
                c.FailAt(nvalAt, $"{field} nval", $"{nval} values do not fit in the {c.Remaining} bytes left (file is {file.Length} bytes; truncated?)");
            long valuesAt = c.Position;
            var raw = c.Take(checked(nval * 4), $"{field} values");
            var values = new float[nval];
            for (int j = 0; j < nval; j++)
            {
                float v = BinaryPrimitives.ReadSingleLittleEndian(raw[(4 * j)..]);
                if (!float.IsFinite(v) || v < 0)
                    c.FailAt(valuesAt + 4L * j, $"{field} value {j}", $"{v} is not a mean square (finite, non-negative)");
                values[j] = v;
            }
            if (!map.TryAdd(name, new ImatrixEntry(name, values, [ncall])))
                c.FailAt(at, $"{field}", "duplicate tensor name");
        }

        // The trailing chunk count and dataset name are optional (older files end here).
        int chunkCount = 0;
        var datasets = new List<string>();
        if (c.Remaining > 0)
        {
            long at = c.Position;
            chunkCount = c.ReadI32("chunk_count");
            if (chunkCount < 0) c.FailAt(at, "chunk_count", $"negative chunk count {chunkCount}");
            if (c.Remaining > 0)
            {
                long lenAt = c.Position;
                int len = c.ReadI32("dataset name length");
                if (len < 0 || len > MaxDatasetBytes || len > c.Remaining)
                    c.FailAt(lenAt, "dataset name length", $"{len} bytes do not fit in the {c.Remaining} bytes left (at most {MaxDatasetBytes})");
                if (len > 0)
                {
                    var bytes = c.Take(len, "dataset name");
                    if (bytes.IndexOf((byte)0) >= 0) c.FailAt(lenAt + 4, "dataset name", "contains a NUL byte");
                    datasets.Add(c.DecodeUtf8(bytes, "dataset name", lenAt + 4));
                }
            }
            if (c.Remaining > 0) c.Fail("end of file", $"{c.Remaining} unexpected bytes after the dataset name");
        }
        return new ImportanceMatrix.Parsed(map, datasets, chunkCount, 0);
    }

    /// <summary>
    /// save_imatrix_legacy's bytes. A legacy matrix is written back as stored; raw sums become (sum / count) · ncall
    /// with ncall = ⌈max count / chunk size⌉, a matrix with no rows stores ones, and tensors with no rows at all are left out.
    /// </summary>
    public static byte[] Serialize(ImportanceMatrix m)
    {
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true);
        var records = new List<(string Name, int Ncall, float[] Values)>();
        if (m.Kind == ImatrixFormat.Dat)
        {
            foreach (var e in m.Entries) records.Add((e.Name, (int)e.CountsArray[0], e.SumsArray));
        }
        else
        {
            if (m.ChunkSize < 1) throw new BadInputException("the importance matrix has no chunk size, which the .dat format needs to scale its counts");
            long chunk = m.ChunkSize;
            foreach (var e in m.Entries)
            {
                var counts = e.CountsArray.Select(x => (long)Math.Round(x, MidpointRounding.AwayFromZero)).ToArray();
                if (counts.All(x => x == 0)) continue;
                long ncall64 = (counts.Max() + (chunk - 1)) / chunk;
                if (ncall64 > int.MaxValue) throw new BadInputException($"'{e.Name}': {counts.Max()} rows are too many for the .dat format's int32 call count");
                int ncall = (int)ncall64;
                var sums = e.SumsArray;
                int perMatrix = sums.Length / counts.Length;
                var values = new float[sums.Length];
                for (int i = 0; i < sums.Length; i++)
                {
                    float count = counts[i / perMatrix];
                    float value = sums[i];
                    if (count == 0f)
                    {
                        value = 1f;
                        count = 1f;
                    }
                    values[i] = value / count * ncall;
                }
                records.Add((e.Name, ncall, values));
            }
        }
        w.Write(records.Count);
        foreach (var (name, ncall, values) in records)
        {
            var nameBytes = Encoding.UTF8.GetBytes(name);
            w.Write(nameBytes.Length);
            w.Write(nameBytes);
            w.Write(ncall);
            w.Write(values.Length);
            foreach (float v in values) w.Write(v);
        }
        w.Write(m.ChunkCount);
        var dataset = m.Datasets.Count > 0 ? Encoding.UTF8.GetBytes(m.Datasets[^1]) : [];
        w.Write(dataset.Length);
        w.Write(dataset);
        w.Flush();
        return ms.ToArray();
    }
}
