using System.Text.RegularExpressions;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Formats.HuggingFace;
using EdgeQuant.Formats.Llama2c;

namespace EdgeQuant.Models.Loading;

/// <summary>
/// Loads a llama2.c legacy checkpoint and its tokenizer.bin. Its weights are already in the canonical layout
/// (llama2.c, like Meta's checkpoints and GGUF, interleaves RoPE pairs), so tensors are plain mapped slices. A shared
/// classifier appears as <c>output.weight</c> aliasing the embedding's bytes, as llama.cpp's llama2.c converter
/// writes it, so both formats list the same tensors.
/// </summary>
public static partial class Llama2cModelLoader
{
    /// <summary>run.c's rmsnorm adds 1e-5f.</summary>
    public const float NormEpsilon = 1e-5f;

    /// <summary>run.c's RoPE: freq = 1 / 10000^(head_dim_index / head_size).</summary>
    public const float RopeTheta = 10000f;

    public const int UnknownId = 0, BosId = 1, EosId = 2;

    [GeneratedRegex("^<0x[0-9A-Fa-f]{2}>$")]
    private static partial Regex ByteToken();

    public static Model Load(string path, string? tokenizerPath = null)
    {
        var ckpt = Llama2cReader.Open(path);
        try
        {
            var h = ckpt.Header;
            var config = new ModelConfig
            {
                Architecture = Architecture.Llama,
                SourceArchitecture = "llama2.c",
                VocabSize = h.VocabSize,
                EmbeddingLength = h.Dim,
                BlockCount = h.Layers,
                HeadCount = h.Heads,
                HeadCountKv = h.KvHeads,
                FeedForwardLength = h.HiddenDim,
                ContextLength = h.SeqLen,
                HeadDim = h.HeadSize,
                RopeTheta = RopeTheta,
                NormEpsilon = NormEpsilon,
                TiedEmbeddings = h.SharedClassifier,
            };
            var byName = ckpt.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
            var tensors = new List<ModelTensor>();
            void Add(string canonical, string source, string? sourceLabel = null)
            {
                var t = byName[source];
                tensors.Add(new ModelTensor
                {
                    Name = canonical,
                    Shape = t.Shape,
                    Type = TensorType.F32,
                    SourceName = sourceLabel ?? t.Name,
                    Storage = new MappedFileTensorStorage(ckpt.File, t.Offset, checked((int)t.ByteLength), t.Name),
                });
            }
            // GGUF's order (llama.cpp's llama2.c converter), so the two tensor tables read alike.
            Add("token_embd.weight", "token_embedding_table");
            Add("output_norm.weight", "rms_final_weight");
            if (h.SharedClassifier) Add("output.weight", "token_embedding_table", "token_embedding_table (shared classifier)");
            else Add("output.weight", "wcls");
            for (int l = 0; l < h.Layers; l++)
            {
                var p = $"blk.{l}.";
                Add(p + "attn_q.weight", $"wq[{l}]");
                Add(p + "attn_k.weight", $"wk[{l}]");
                Add(p + "attn_v.weight", $"wv[{l}]");
                Add(p + "attn_output.weight", $"wo[{l}]");
                Add(p + "attn_norm.weight", $"rms_att_weight[{l}]");
                Add(p + "ffn_gate.weight", $"w1[{l}]");
                Add(p + "ffn_down.weight", $"w2[{l}]");
                Add(p + "ffn_up.weight", $"w3[{l}]");
                Add(p + "ffn_norm.weight", $"rms_ffn_weight[{l}]");
            }

            var metadata = new Dictionary<string, object>(StringComparer.Ordinal)
            {
                ["llama2c.dim"] = (long)h.Dim,
                ["llama2c.hidden_dim"] = (long)h.HiddenDim,
                ["llama2c.n_layers"] = (long)h.Layers,
                ["llama2c.n_heads"] = (long)h.Heads,
                ["llama2c.n_kv_heads"] = (long)h.KvHeads,
                ["llama2c.vocab_size"] = (long)(h.SharedClassifier ? h.VocabSize : -h.VocabSize),
                ["llama2c.seq_len"] = (long)h.SeqLen,
                ["llama2c.shared_classifier"] = h.SharedClassifier,
            };
            var tokPath = tokenizerPath ?? FindTokenizer(path, h.VocabSize);
            TokenizerData? tokenizer = null;
            if (tokPath is not null) tokenizer = ToTokenizerData(Llama2cTokenizerReader.Read(tokPath, h.VocabSize));
            else metadata["tokenizer.warning"] = "no tokenizer.bin or tok*.bin beside the checkpoint";
            return new Model(config, tensors, tokenizer, new Provenance(path, ModelFormat.Llama2c, Path.GetFileNameWithoutExtension(path)), metadata, [ckpt]);
        }
        catch
        {
            ckpt.Dispose();
            throw;
        }
    }

    /// <summary>tok{vocab}.bin, then tokenizer.bin, then a single tok*.bin beside the checkpoint.</summary>
    public static string? FindTokenizer(string checkpointPath, int vocabSize)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(checkpointPath))!;
        foreach (var name in new[] { $"tok{vocabSize}.bin", "tokenizer.bin" })
        {
            var p = Path.Combine(dir, name);
            if (File.Exists(p)) return p;
        }
        var candidates = Directory.GetFiles(dir, "tok*.bin");
        return candidates.Length == 1 ? candidates[0] : null;
    }

    /// <summary>
    /// Turns llama2.c's pieces back into SentencePiece spelling the way llama.cpp's converter does: ' ' becomes '▁',
    /// ids 0/1/2 are &lt;unk&gt;/&lt;s&gt;/&lt;/s&gt; (llama2.c stores "\n&lt;s&gt;\n"), and types follow the piece.
    /// </summary>
    public static TokenizerData ToTokenizerData(Llama2cTokenizer tok)
    {
        int n = tok.Pieces.Length;
        var pieces = new string[n];
        var types = new int[n];
        for (int id = 0; id < n; id++)
        {
            var text = tok.Pieces[id];
            (pieces[id], types[id]) = id switch
            {
                UnknownId => ("<unk>", GgufTokenType.Unknown),
                BosId => ("<s>", GgufTokenType.Control),
                EosId => ("</s>", GgufTokenType.Control),
                _ when text.Length == 0 => (text, GgufTokenType.Control),
                _ when ByteToken().IsMatch(text) => (text, GgufTokenType.Byte),
                _ => (text.Replace(' ', '\u2581'), GgufTokenType.Normal),
            };
        }
        return new TokenizerData
        {
            Kind = "llama",
            Tokens = pieces,
            Scores = (float[])tok.Scores.Clone(),
            TokenTypes = types,
            BosId = n > BosId ? BosId : null,
            EosId = n > EosId ? EosId : null,
            UnknownId = UnknownId,
            AddBos = true,
            AddEos = false,
            SourcePath = tok.Path,
        };
    }
}
