using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.Safetensors;
using EdgeQuant.Testing;

namespace EdgeQuant.Formats.Tests.Safetensors;

public class SafetensorsRoundTripTests
{
    public static TheoryData<TensorType> AllDtypes => new()
    {
        TensorType.F32, TensorType.F16, TensorType.BF16, TensorType.F64, TensorType.I8, TensorType.U8,
        TensorType.I16, TensorType.I32, TensorType.I64, TensorType.Bool,
    };

    [Theory]
    [MemberData(nameof(AllDtypes))]
    public void Every_dtype_round_trips_bytes_shape_and_type(TensorType type)
    {
        using var dir = new TempDir();
        var rng = new Random(17 + (int)type);
        var shapes = new long[][] { [3, 5], [7], [2, 1, 4], [] };
        var tensors = shapes.Select((s, i) => (Spec: new SafetensorsTensorSpec($"t{i}", type, s), Data: SafetensorsTestFiles.RandomBytes(rng, type, s.Aggregate(1L, (a, b) => a * b)))).ToList();
        var path = dir.File("all.safetensors");
        SafetensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode ✓" });

        using var f = SafetensorsReader.Open(path);
        Assert.Equal(tensors.Count, f.Tensors.Count);
        foreach (var (spec, data) in tensors)
        {
            var t = f.Get(spec.Name);
            Assert.Equal(type, t.Type);
            Assert.Equal(TensorTypes.Get(type).SafetensorsName, t.Dtype);
            Assert.Equal(spec.Shape, t.Shape);
            Assert.Equal(data, f.GetBytes(t).ToArray());
        }
        Assert.Equal("ünïcode ✓", f.Metadata["note"]);
        Assert.Equal("pt", f.Metadata["format"]);
    }

    [Fact]
    public void Layout_follows_the_reference_writer_aligned_header_widest_dtype_first_then_name()
    {
        using var dir = new TempDir();
        var path = dir.File("x.safetensors");
        SafetensorsWriter.Write(path,
        [
            (new SafetensorsTensorSpec("b", TensorType.F16, [3]), new byte[6]),
            (new SafetensorsTensorSpec("a", TensorType.F16, [1]), new byte[2]),
            (new SafetensorsTensorSpec("z", TensorType.F32, [1]), new byte[4]),
            (new SafetensorsTensorSpec("m", TensorType.U8, [1]), new byte[1]),
        ]);
        var bytes = File.ReadAllBytes(path);
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, (8 + n) % 8);
        var header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        Assert.StartsWith("{", header);
        var trimmed = header.TrimEnd(' ');
        Assert.EndsWith("}", trimmed);
        Assert.InRange(header.Length - trimmed.Length, 0, 7);
        // The documented rule (safetensors' serialize): dtype descending (F32 > F16 > U8), then name; offsets follow.
        using var doc = JsonDocument.Parse(header.TrimEnd(' '));
        var names = doc.RootElement.EnumerateObject().Select(p => p.Name).ToArray();
        Assert.Equal(new[] { "z", "a", "b", "m" }, names);
        var offsets = names.Select(k => doc.RootElement.GetProperty(k).GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray()).ToArray();
        Assert.Equal(new long[] { 0, 4 }, offsets[0]);
        Assert.Equal(new long[] { 4, 6 }, offsets[1]);
        Assert.Equal(new long[] { 6, 12 }, offsets[2]);
        Assert.Equal(new long[] { 12, 13 }, offsets[3]);
        Assert.Equal(8 + n + 13, bytes.Length);
    }

    [Fact]
    public void Hand_built_file_reads_with_absolute_offsets()
    {
        var bytes = SafetensorsTestFiles.Valid();
        using var f = SafetensorsTestFiles.Read(bytes);
        long dataStart = 8 + Encoding.UTF8.GetByteCount(SafetensorsTestFiles.ValidHeader);
        Assert.Equal(dataStart, f.DataOffset);
        var h = f.Get("h");
        Assert.Equal(TensorType.F16, h.Type);
        Assert.Equal(dataStart + 24, h.FileOffset);
        Assert.Equal(bytes.AsSpan((int)dataStart + 24, 8).ToArray(), f.GetBytes(h).ToArray());
        Assert.Equal(new[] { "w", "h", "n" }, f.Tensors.Select(t => t.Name));
    }

    [Fact]
    public void Streaming_writer_accepts_pieces_in_any_order_and_refuses_an_incomplete_file()
    {
        using var dir = new TempDir();
        var path = dir.File("s.safetensors");
        var data = Enumerable.Range(0, 40).Select(i => (byte)i).ToArray();
        using (var w = new SafetensorsWriter(path, [new("big", TensorType.F32, [10]), new("small", TensorType.U8, [3])]))
        {
            w.WriteTensor("small", new byte[] { 9, 8, 7 });
            w.WriteTensor("big", data.AsSpan(20), 20);
            w.WriteTensor("big", data.AsSpan(0, 20), 0);
            w.Commit();
        }
        using (var f = SafetensorsReader.Open(path))
        {
            Assert.Equal(data, f.GetBytes(f.Get("big")).ToArray());
            Assert.Equal(new byte[] { 9, 8, 7 }, f.GetBytes(f.Get("small")).ToArray());
        }

        var partial = dir.File("p.safetensors");
        using (var w = new SafetensorsWriter(partial, [new("a", TensorType.F32, [2])]))
        {
            w.WriteTensor("a", new byte[4], 0);
            Assert.Throws<EdgeQuant.Core.Errors.InternalFailureException>(() => w.Commit());
        }
        Assert.False(File.Exists(partial));
        Assert.DoesNotContain(Directory.GetFiles(dir.Path), p => p.Contains(".p.safetensors"));
    }

    [Fact]
    public void Sharded_checkpoint_resolves_every_tensor_through_the_weight_map()
    {
        using var dir = new TempDir();
        var rng = new Random(5);
        var all = new Dictionary<string, byte[]>();
        var weightMap = new Dictionary<string, string>();
        for (int s = 0; s < 2; s++)
        {
            var shard = $"model-0000{s + 1}-of-00002.safetensors";
            var list = new List<(SafetensorsTensorSpec, byte[])>();
            for (int i = 0; i < 3; i++)
            {
                var name = $"layer{s}.t{i}";
                var data = SafetensorsTestFiles.RandomBytes(rng, TensorType.BF16, 8);
                list.Add((new SafetensorsTensorSpec(name, TensorType.BF16, [2, 4]), data));
                all[name] = data;
                weightMap[name] = shard;
            }
            SafetensorsWriter.Write(Path.Combine(dir.Path, shard), list);
        }
        SafetensorsIndex.Write(dir.File(SafetensorsConstants.IndexFileName), weightMap, all.Values.Sum(v => (long)v.Length));

        using var ckpt = SafetensorsCheckpoint.Open(dir.Path);
        Assert.Equal(2, ckpt.Shards.Count);
        Assert.Equal(all.Keys.Order(), ckpt.Entries.Select(e => e.Name).Order());
        foreach (var (name, data) in all)
        {
            var e = ckpt.Find(name)!;
            Assert.Equal(weightMap[name], Path.GetFileName(e.File.Path));
            Assert.Equal(data, e.Bytes.ToArray());
        }
    }

    [Fact]
    public void Sharded_index_errors_name_the_index_and_the_entry()
    {
        using var dir = new TempDir();
        SafetensorsWriter.Write(dir.File("a.safetensors"), [(new SafetensorsTensorSpec("x", TensorType.F32, [1]), new byte[4])]);
        var index = dir.File(SafetensorsConstants.IndexFileName);

        SafetensorsIndex.Write(index, new Dictionary<string, string> { ["x"] = "a.safetensors", ["y"] = "a.safetensors" }, 8);
        var missing = Assert.Throws<EdgeQuant.Core.Errors.FileFormatException>(() => SafetensorsCheckpoint.Open(dir.Path));
        Assert.Contains(index, missing.Message);
        Assert.Contains("weight_map.y", missing.Message);

        SafetensorsIndex.Write(index, new Dictionary<string, string> { ["x"] = "../a.safetensors" }, 4);
        var traversal = Assert.Throws<EdgeQuant.Core.Errors.FileFormatException>(() => SafetensorsCheckpoint.Open(dir.Path));
        Assert.Contains("not a plain file name", traversal.Message);

        SafetensorsIndex.Write(index, new Dictionary<string, string> { ["x"] = "b.safetensors" }, 4);
        var noShard = Assert.Throws<EdgeQuant.Core.Errors.FileFormatException>(() => SafetensorsCheckpoint.Open(dir.Path));
        Assert.Contains("'b.safetensors' does not exist", noShard.Message);

        File.WriteAllText(index, "{\"weight_map\": [1, 2]}");
        Assert.Throws<EdgeQuant.Core.Errors.FileFormatException>(() => SafetensorsCheckpoint.Open(dir.Path));
    }
}
