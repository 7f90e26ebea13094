using System.Runtime.InteropServices;
using EdgeQuant.Compression.Imatrix;
using EdgeQuant.Compression.Tests.GgufQuant;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Testing;

namespace EdgeQuant.Compression.Tests.Imatrix;

/// <summary>
/// llama-imatrix's save_imatrix replayed through the real ggml/gguf library of the pinned bundle (libggml-base:
/// gguf_init_empty, gguf_set_*, ggml_new_tensor_2d, gguf_add_tensor, gguf_write_to_file, in save_imatrix's order):
/// the file it writes must be byte for byte what <see cref="ImportanceMatrix.Write(string, ImatrixFormat)"/> writes, and
/// reading it back must give the numbers it was given.
/// </summary>
public sealed unsafe class ImatrixGgufPeerTests
{
    [StructLayout(LayoutKind.Sequential)]
    private struct GgmlInitParams
    {
        public nuint MemSize;
        public nint MemBuffer;
        public byte NoAlloc;
    }

    private const int GgmlTypeF32 = 0;

    [LlamaCppFact]
    public void Ggml_s_own_gguf_writer_produces_our_bytes()
    {
        var info = LlamaLibrary.EnsureInitialized();
        var lib = NativeLibrary.Load(Path.Combine(Path.GetDirectoryName(info.LlamaPath)!, "libggml-base.so"));
        var ggmlInit = (delegate* unmanaged<GgmlInitParams, nint>)NativeLibrary.GetExport(lib, "ggml_init");
        var ggmlFree = (delegate* unmanaged<nint, void>)NativeLibrary.GetExport(lib, "ggml_free");
        var overhead = (delegate* unmanaged<nuint>)NativeLibrary.GetExport(lib, "ggml_tensor_overhead");
        var newTensor2d = (delegate* unmanaged<nint, int, long, long, nint>)NativeLibrary.GetExport(lib, "ggml_new_tensor_2d");
        var setName = (delegate* unmanaged<nint, byte*, nint>)NativeLibrary.GetExport(lib, "ggml_set_name");
        var dataF32 = (delegate* unmanaged<nint, float*>)NativeLibrary.GetExport(lib, "ggml_get_data_f32");
        var ggufInitEmpty = (delegate* unmanaged<nint>)NativeLibrary.GetExport(lib, "gguf_init_empty");
        var ggufFree = (delegate* unmanaged<nint, void>)NativeLibrary.GetExport(lib, "gguf_free");
        var setStr = (delegate* unmanaged<nint, byte*, byte*, void>)NativeLibrary.GetExport(lib, "gguf_set_val_str");
        var setArrStr = (delegate* unmanaged<nint, byte*, byte**, nuint, void>)NativeLibrary.GetExport(lib, "gguf_set_arr_str");
        var setU32 = (delegate* unmanaged<nint, byte*, uint, void>)NativeLibrary.GetExport(lib, "gguf_set_val_u32");
        var addTensor = (delegate* unmanaged<nint, nint, void>)NativeLibrary.GetExport(lib, "gguf_add_tensor");
        var writeToFile = (delegate* unmanaged<nint, byte*, byte, byte>)NativeLibrary.GetExport(lib, "gguf_write_to_file");

        var m = ImatrixFormatTests.Sample();
        using var dir = new TempDir();
        var ggmlPath = dir.File("ggml.gguf");
        var strings = new List<nint>();
        byte* Utf8(string s)
        {
            var p = Marshal.StringToCoTaskMemUTF8(s);
            strings.Add(p);
            return (byte*)p;
        }

        nuint size = 0;
        foreach (var name in m.TensorNames)
            size += 2 * (overhead() + 64) + (nuint)(4 * m.Entry(name)!.Sums.Length + 4 * m.Entry(name)!.Matrices);
        nint ctx = ggmlInit(new GgmlInitParams { MemSize = size, MemBuffer = 0, NoAlloc = 0 });
        nint gguf = ggufInitEmpty();
        try
        {
            Assert.NotEqual(0, ctx);
            setStr(gguf, Utf8("general.type"), Utf8("imatrix"));
            var datasets = m.Datasets.Select(d => (nint)Utf8(d)).ToArray();
            fixed (nint* d = datasets) setArrStr(gguf, Utf8("imatrix.datasets"), (byte**)d, (nuint)datasets.Length);
            setU32(gguf, Utf8("imatrix.chunk_count"), (uint)m.ChunkCount);
            setU32(gguf, Utf8("imatrix.chunk_size"), (uint)m.ChunkSize);
            // save_imatrix: names sorted; per name in_sum2 [nval / nmat, nmat] then counts [1, nmat], F32.
            foreach (var name in m.TensorNames.Order(StringComparer.Ordinal))
            {
                var e = m.Entry(name)!;
                nint sums = newTensor2d(ctx, GgmlTypeF32, e.Columns, e.Matrices);
                nint counts = newTensor2d(ctx, GgmlTypeF32, 1, e.Matrices);
                setName(sums, Utf8(name + ".in_sum2"));
                setName(counts, Utf8(name + ".counts"));
                e.Sums.CopyTo(new Span<float>(dataF32(sums), e.Sums.Length));
                for (int j = 0; j < e.Matrices; j++) dataF32(counts)[j] = (float)e.Counts[j];
                addTensor(gguf, sums);
                addTensor(gguf, counts);
            }
            Assert.Equal(1, writeToFile(gguf, Utf8(ggmlPath), 0));
        }
        finally
        {
            ggufFree(gguf);
            if (ctx != 0) ggmlFree(ctx);
            foreach (var p in strings) Marshal.FreeCoTaskMem(p);
        }

        var ggmlBytes = File.ReadAllBytes(ggmlPath);
        Assert.Equal(ggmlBytes, m.Serialize(ImatrixFormat.Gguf));
        var back = ImportanceMatrix.Read(ggmlPath);
        foreach (var name in m.TensorNames) Assert.Equal(m.ImportanceFor(name), back.ImportanceFor(name));
    }
}
