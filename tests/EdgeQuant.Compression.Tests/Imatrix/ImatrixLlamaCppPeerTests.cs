using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using EdgeQuant.Compression.Imatrix;
using EdgeQuant.Compression.Tests.GgufQuant;
using EdgeQuant.Models;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.LlamaCpp.Native;
using EdgeQuant.Testing;
using Xunit.Abstractions;

namespace EdgeQuant.Compression.Tests.Imatrix;

/// <summary>
/// The importance matrix collected by the real llama.cpp: libllama's eval callback (the hook llama-imatrix installs)
/// gathers, as collect_imatrix does, the squared inputs of every MUL_MAT over a <c>blk.*</c> weight; our collection
/// over the same chunks must give the same tensors, the same counts and sums within the engine's agreement with
/// llama.cpp.
/// </summary>
public sealed unsafe class ImatrixLlamaCppPeerTests(ITestOutputHelper output)
{
    private const string Stories = "models/stories260K/stories260K.gguf";
    private const string Text = "corpus/tinystories-sample.txt";

    /// <summary>
    /// The engine's logits agree with llama.cpp's F32 path to ~1e-6 relative L2 (Engine/README.md); a layer input's
    /// sum of squares over 384 rows inherits that plus float summation order: 1e-4 leaves two orders of margin and
    /// still fails on any real difference (a missed row, a wrong input, another normalization).
    /// </summary>
    private const double MaxRelativeL2 = 1e-4;

    // struct ggml_tensor of the pinned ggml.h (offsets as gcc lays them out on x86-64/arm64): ne @16, nb @48, op @80,
    // src @152, data @248, name @256 (64 bytes). GGML_OP_MUL_MAT = 29, GGML_TYPE_F32 = 0.
    private const int NeOffset = 16, NbOffset = 48, OpOffset = 80, SrcOffset = 152, DataOffset = 248, NameOffset = 256, MaxName = 64;
    private const int OpMulMat = 29;

    private static readonly Dictionary<string, (float[] Sums, long Count)> Collected = new(StringComparer.Ordinal);
    private static readonly List<string> Unexpected = [];

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static byte EvalCallback(nint t, byte ask, nint userData)
    {
        if (*(int*)(t + OpOffset) != OpMulMat) return 0;
        nint src0 = *(nint*)(t + SrcOffset), src1 = *(nint*)(t + SrcOffset + 8);
        var name = Marshal.PtrToStringUTF8(src0 + NameOffset) ?? "";
        long* ne1 = (long*)(src1 + NeOffset);
        // collect_imatrix's ask: MUL_MAT of an F32 input over >= 16 rows, weight named blk.* (no --process-output).
        if (*(int*)src1 != 0 || ne1[1] < 16 || !name.StartsWith("blk.", StringComparison.Ordinal)) return 0;
        if (ask != 0) return 1;
        ulong* nb1 = (ulong*)(src1 + NbOffset);
        // No exception may cross back into native code: an unexpected shape is recorded and asserted afterwards.
        if (ne1[2] * ne1[3] != 1) Unexpected.Add($"{name}: input ne [{ne1[0]}, {ne1[1]}, {ne1[2]}, {ne1[3]}]");
        byte* data = *(byte**)(src1 + DataOffset);
        int cols = (int)ne1[0];
        if (!Collected.TryGetValue(name, out var e)) e = (new float[cols], 0);
        for (long r = 0; r < ne1[1]; r++)
        {
            float* x = (float*)(data + r * (long)nb1[1]);
            for (int j = 0; j < cols; j++) e.Sums[j] += x[j] * x[j];
        }
        Collected[name] = (e.Sums, e.Count + ne1[1]);
        return 1;
    }

    /// <summary>
    /// Chunks of 128 (one micro-batch each), and chunks of 2052 decoded as llama-imatrix -c 2052 does (batches of
    /// 2048 + 4 tokens, micro-batches of 512: the 4-token one is declined by the eval callback's 16-row rule).
    /// </summary>
    [LlamaCppTheory(Stories, Text)]
    [InlineData(128, 3, 128, 128, 20000)]
    [InlineData(2052, 1, 2048, 512, 60000)]
    public void Stories260K_sums_and_counts_match_what_llama_cpp_s_eval_callback_collects(int ctx, int chunks, int nBatch, int nUbatch, int chars)
    {
        var path = SharedData.Require(Stories);
        var text = File.ReadAllText(SharedData.Require(Text))[..chars];
        int[] tokens;
        int bos;
        ImportanceMatrix ours;
        using (var model = ModelLoader.Load(path))
        {
            var tok = Tokenizer.FromModel(model);
            tokens = tok.Encode(text, addSpecial: true, parseSpecial: false);
            bos = tok.BosId!.Value;
            ours = ImatrixRunner.Collect(model, tokens, new ImatrixRunOptions { Context = ctx, Chunks = chunks, Threads = 1, ComputePerplexity = false }, null,
                CancellationToken.None);
        }

        Collected.Clear();
        Unexpected.Clear();
        LlamaLibrary.EnsureInitialized();
        LlamaNative.llama_backend_init();
        var mp = LlamaNative.llama_model_default_params();
        nint lm = LlamaNative.llama_model_load_from_file(path, mp);
        Assert.NotEqual(0, lm);
        nint lctx = 0;
        try
        {
            var cp = LlamaNative.llama_context_default_params();
            cp.n_ctx = (uint)ctx;
            cp.n_batch = (uint)nBatch;
            cp.n_ubatch = (uint)nUbatch;
            cp.n_seq_max = 1;
            cp.n_threads = cp.n_threads_batch = 1;
            // The engine's numerics: F32 KV cache, no flash attention.
            cp.type_k = cp.type_v = GgmlType.F32;
            cp.flash_attn_type = LlamaFlashAttnType.Disabled;
            cp.cb_eval = (nint)(delegate* unmanaged[Cdecl]<nint, byte, nint, byte>)&EvalCallback;
            lctx = LlamaNative.llama_init_from_model(lm, cp);
            Assert.NotEqual(0, lctx);
            var batch = LlamaNative.llama_batch_init(nBatch, 0, 1);
            try
            {
                for (int c = 0; c < chunks; c++)
                {
                    LlamaNative.llama_memory_clear(LlamaNative.llama_get_memory(lctx), true);
                    // As compute_imatrix: batches of n_batch; the chunk's first token is BOS; every position outputs logits.
                    for (int b0 = 0; b0 < ctx; b0 += nBatch)
                    {
                        int n = Math.Min(nBatch, ctx - b0);
                        batch.n_tokens = n;
                        for (int k = 0; k < n; k++)
                        {
                            int i = b0 + k;
                            batch.token[k] = i == 0 ? bos : tokens[c * ctx + i];
                            batch.pos[k] = i;
                            batch.n_seq_id[k] = 1;
                            batch.seq_id[k][0] = 0;
                            batch.logits[k] = 1;
                        }
                        Assert.Equal(0, LlamaNative.llama_decode(lctx, batch));
                    }
                }
            }
            finally
            {
                LlamaNative.llama_batch_free(batch);
            }
        }
        finally
        {
            if (lctx != 0) LlamaNative.llama_free(lctx);
            LlamaNative.llama_model_free(lm);
        }

        Assert.Empty(Unexpected);
        Assert.Equal(Collected.Keys.Order(StringComparer.Ordinal), ours.TensorNames);
        double worst = 0;
        foreach (var (name, (sums, count)) in Collected)
        {
            var e = ours.Entry(name)!;
            Assert.Equal((double)count, e.Counts[0]);
            Assert.Equal(sums.Length, e.Sums.Length);
            double num = 0, den = 0;
            for (int j = 0; j < sums.Length; j++)
            {
                double d = (double)e.Sums[j] - sums[j];
                num += d * d;
                den += (double)sums[j] * sums[j];
            }
            double rel = Math.Sqrt(num / den);
            worst = Math.Max(worst, rel);
            Assert.True(rel <= MaxRelativeL2, $"{name}: relative L2 {rel:E2} between our sums and llama.cpp's");
        }
        // Which rows count is part of the comparison: with -c 2052 each chunk's last 4 tokens are not collected.
        Assert.Equal((double)chunks * (ctx == 2052 ? 2048 : ctx), ours.Entry("blk.0.attn_q.weight")!.Counts[0]);
        output.WriteLine($"{Collected.Count} tensors, {chunks} chunks of {ctx}: worst relative L2 of the sums vs llama.cpp {worst:E2}");
    }
}
