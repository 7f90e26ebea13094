using System.Buffers.Binary;
using System.Text;
using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.IO;
using EdgeQuant.Formats.Llama2c;
using EdgeQuant.Testing;

namespace EdgeQuant.Formats.Tests.Llama2c;

public class Llama2cReaderTests
{
    private const string Stories = "models/stories260K/stories260K.bin";
    private const string Tok = "models/stories260K/tok512.bin";

    /// <summary>
    /// A checkpoint written the way llama2.c's legacy export does (run.c reads it back in the same order); float k of
    /// the file holds the value k so every tensor's offset is checkable.
    /// </summary>
    private static byte[] Checkpoint(int dim, int hidden, int layers, int heads, int kvHeads, int vocab, int seqLen, int extraBytes = 0)
    {
        int headSize = dim / heads, kvDim = dim * kvHeads / heads, v = Math.Abs(vocab);
        long floats = (long)v * dim                 // token_embedding_table
                      + layers * dim                 // rms_att_weight
                      + layers * dim * dim           // wq
                      + 2L * layers * kvDim * dim    // wk, wv
                      + layers * dim * dim           // wo
                      + layers * dim                 // rms_ffn_weight
                      + 3L * layers * hidden * dim   // w1, w2, w3
                      + dim                          // rms_final_weight
                      + seqLen * headSize / 2 * 2    // freq_cis_real, freq_cis_imag
                      + (vocab < 0 ? (long)v * dim : 0); // wcls
        var bytes = new byte[28 + floats * 4 + extraBytes];
        int[] header = [dim, hidden, layers, heads, kvHeads, vocab, seqLen];
        for (int i = 0; i < 7; i++) BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4 * i), header[i]);
        for (long k = 0; k < floats; k++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan((int)(28 + 4 * k)), k);
        return bytes;
    }

    private static Llama2cCheckpoint Read(byte[] bytes) => Llama2cReader.Read(MappedFile.FromBytes(bytes, "model.bin"));

    private static float FirstFloat(Llama2cCheckpoint c, string name) =>
        BinaryPrimitives.ReadSingleLittleEndian(c.GetBytes(c.Tensors.Single(t => t.Name == name)));

    [Fact]
    public void Shared_classifier_layout_follows_run_c()
    {
        using var c = Read(Checkpoint(dim: 8, hidden: 12, layers: 2, heads: 4, kvHeads: 2, vocab: 10, seqLen: 6));
        Assert.True(c.Header.SharedClassifier);
        Assert.Equal(10, c.Header.VocabSize);
        Assert.DoesNotContain(c.Tensors, t => t.Field == "wcls");
        // Offsets (in floats, counted independently): emb 80, rms_att 2*8, wq 2*64, wk 2*32, wv 2*32, wo 2*64.
        Assert.Equal(0f, FirstFloat(c, "token_embedding_table"));
        Assert.Equal(80f, FirstFloat(c, "rms_att_weight[0]"));
        Assert.Equal(88f, FirstFloat(c, "rms_att_weight[1]"));
        Assert.Equal(96f, FirstFloat(c, "wq[0]"));
        Assert.Equal(96f + 128, FirstFloat(c, "wk[0]"));
        Assert.Equal(96f + 128 + 32, FirstFloat(c, "wk[1]"));
        Assert.Equal(96f + 128 + 64 + 64, FirstFloat(c, "wo[0]"));
        Assert.Equal(new long[] { 4, 8 }, c.Tensors.Single(t => t.Name == "wv[1]").Shape);
        Assert.Equal(new long[] { 8, 12 }, c.Tensors.Single(t => t.Name == "w2[0]").Shape);
        Assert.Equal(new long[] { 12, 8 }, c.Tensors.Single(t => t.Name == "w3[1]").Shape);
    }

    [Fact]
    public void Negative_vocab_means_an_unshared_classifier_after_the_rope_tables()
    {
        using var c = Read(Checkpoint(dim: 8, hidden: 12, layers: 1, heads: 2, kvHeads: 2, vocab: -10, seqLen: 6));
        Assert.False(c.Header.SharedClassifier);
        var final = c.Tensors.Single(t => t.Name == "rms_final_weight");
        var wcls = c.Tensors.Single(t => t.Name == "wcls");
        // freq_cis: 2 tables of seq_len * head_size / 2 = 6 * 4 / 2 = 12 floats sit between them.
        Assert.Equal(final.Offset + 8 * 4 + 2 * 12 * 4, wcls.Offset);
        Assert.Equal(new long[] { 10, 8 }, wcls.Shape);
        Assert.Equal(c.File.Length, wcls.Offset + wcls.ByteLength);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1)]
    [InlineData(4)]
    public void Size_mismatch_names_the_header_values_and_the_offset(int delta)
    {
        var good = Checkpoint(dim: 8, hidden: 12, layers: 1, heads: 2, kvHeads: 1, vocab: 10, seqLen: 4);
        var bad = delta < 0 ? good[..^(-delta)] : [.. good, .. new byte[delta]];
        var e = Assert.Throws<FileFormatException>(() => Read(bad));
        Assert.Equal("model.bin", e.FilePath);
        Assert.Equal("file size", e.Field);
        Assert.Equal(Math.Min(good.Length, bad.Length), e.Offset);
        Assert.Contains($"implies {good.Length} bytes", e.Message);
    }

    [Fact]
    public void Truncated_everywhere_is_a_format_error()
    {
        var good = Checkpoint(dim: 4, hidden: 4, layers: 1, heads: 2, kvHeads: 1, vocab: 3, seqLen: 2);
        for (int cut = 0; cut < good.Length; cut++)
        {
            var e = Assert.Throws<FileFormatException>(() => Read(good[..cut]));
            Assert.Contains("byte offset", e.Message);
        }
    }

    [Theory]
    [InlineData(0, -5, "dim", 0)]
    [InlineData(0, 0, "dim", 0)]
    [InlineData(0, 1 << 30, "dim", 0)]
    [InlineData(1, -1, "hidden_dim", 4)]
    [InlineData(2, 1_000_000, "n_layers", 8)]
    [InlineData(3, 0, "n_heads", 12)]
    [InlineData(3, 3, "n_heads", 12)]
    [InlineData(4, 3, "n_kv_heads", 16)]
    [InlineData(4, 16, "n_kv_heads", 16)]
    [InlineData(5, 0, "vocab_size", 20)]
    [InlineData(5, int.MinValue, "vocab_size", 20)]
    [InlineData(5, 100_000_000, "vocab_size", 20)]
    [InlineData(6, -7, "seq_len", 24)]
    public void Absurd_header_values_are_refused_at_their_offset(int index, int value, string field, long offset)
    {
        var bytes = Checkpoint(dim: 8, hidden: 12, layers: 1, heads: 4, kvHeads: 2, vocab: 10, seqLen: 4);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4 * index), value);
        var e = Assert.Throws<FileFormatException>(() => Read(bytes));
        Assert.Equal(field, e.Field);
        Assert.Equal(offset, e.Offset);
    }

    [Fact]
    public void Versioned_export_is_named_as_such()
    {
        var bytes = Checkpoint(dim: 8, hidden: 12, layers: 1, heads: 4, kvHeads: 2, vocab: 10, seqLen: 4);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, 0x616b3432);
        Assert.Contains("version 1 or 2", Assert.Throws<FileFormatException>(() => Read(bytes)).Message);
    }

    [SharedDataFact(Stories)]
    public void Stories260K_header()
    {
        using var c = Llama2cReader.Open(SharedData.Require(Stories));
        // REFERENCE: dim 64, 5 layers, 8 heads / 4 KV heads, FFN 172, vocab 512; shared classifier.
        Assert.Equal((64, 172, 5, 8, 4, 512), (c.Header.Dim, c.Header.HiddenDim, c.Header.Layers, c.Header.Heads, c.Header.KvHeads, c.Header.VocabSize));
        Assert.True(c.Header.SharedClassifier);
        Assert.Equal(c.File.Length, Llama2cReader.ExpectedFileSize(c.Header));
        Assert.Equal(1 + 5 * 9 + 1, c.Tensors.Count);
    }

    [Fact]
    public void Mutated_headers_and_lengths_read_cleanly_or_fail_as_bad_input()
    {
        var seed = Checkpoint(dim: 8, hidden: 12, layers: 2, heads: 4, kvHeads: 2, vocab: -10, seqLen: 6);
        var rng = new Random(4242);
        int clean = 0;
        for (int iter = 0; iter < 3000; iter++)
        {
            var bytes = (byte[])seed.Clone();
            int field = rng.Next(7);
            int value = rng.Next(4) switch
            {
                0 => rng.Next(-3, 40),
                1 => BinaryPrimitives.ReadInt32LittleEndian(seed.AsSpan(4 * field)) + rng.Next(-2, 3),
                2 => -BinaryPrimitives.ReadInt32LittleEndian(seed.AsSpan(4 * field)),
                _ => rng.Next(int.MinValue, int.MaxValue),
            };
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4 * field), value);
            if (rng.Next(3) == 0) bytes = bytes[..rng.Next(bytes.Length + 1)];
            try
            {
                using var c = Read(bytes);
                foreach (var t in c.Tensors) Assert.Equal(t.ByteLength, c.GetBytes(t).Length);
                Assert.Equal(bytes.Length, Llama2cReader.ExpectedFileSize(c.Header));
                clean++;
            }
            catch (BadInputException e)
            {
                Assert.StartsWith("model.bin: ", e.Message);
            }
            catch (Exception e)
            {
                Assert.Fail($"iteration {iter}: field {field} = {value}, {bytes.Length} bytes: {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.True(clean > 0);
    }

    // ---------------------------------------------------------------- tokenizer.bin

    private static byte[] TokenizerBytes(int maxLen, params (float Score, byte[] Text)[] tokens)
    {
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        w.Write(maxLen);
        foreach (var (s, t) in tokens)
        {
            w.Write(s);
            w.Write(t.Length);
            w.Write(t);
        }
        return ms.ToArray();
    }

    [Fact]
    public void Tokenizer_reads_scores_and_pieces()
    {
        var bytes = TokenizerBytes(5, (0f, "<unk>"u8.ToArray()), (-1.5f, " the"u8.ToArray()), (-2f, "é"u8.ToArray()));
        var t = Llama2cTokenizerReader.Read(MappedFile.FromBytes(bytes, "tok.bin"), 3);
        Assert.Equal(new[] { "<unk>", " the", "é" }, t.Pieces);
        Assert.Equal(new[] { 0f, -1.5f, -2f }, t.Scores);
        Assert.Equal(5, t.MaxTokenLength);
        Assert.Equal(3, Llama2cTokenizerReader.Read(MappedFile.FromBytes(bytes, "tok.bin"), null).Pieces.Length);
    }

    [Fact]
    public void Tokenizer_errors_name_the_token_and_offset()
    {
        var tooLong = TokenizerBytes(2, (0f, "abc"u8.ToArray()));
        var e1 = Assert.Throws<FileFormatException>(() => Llama2cTokenizerReader.Read(MappedFile.FromBytes(tooLong, "tok.bin"), 1));
        Assert.Equal("token 0 length", e1.Field);
        Assert.Equal(8, e1.Offset);

        var badUtf8 = TokenizerBytes(4, (0f, "a"u8.ToArray()), (0f, new byte[] { 0x61, 0xFF }));
        var e2 = Assert.Throws<FileFormatException>(() => Llama2cTokenizerReader.Read(MappedFile.FromBytes(badUtf8, "tok.bin"), 2));
        Assert.Equal("token 1 text", e2.Field);
        Assert.Equal(4 + 9 + 8 + 1, e2.Offset);

        var good = TokenizerBytes(4, (0f, "a"u8.ToArray()), (0f, "b"u8.ToArray()));
        for (int cut = 0; cut < good.Length; cut++)
            Assert.Throws<FileFormatException>(() => Llama2cTokenizerReader.Read(MappedFile.FromBytes(good[..cut], "tok.bin"), 2));
        var extra = Assert.Throws<FileFormatException>(() => Llama2cTokenizerReader.Read(MappedFile.FromBytes(good, "tok.bin"), 1));
        Assert.Equal("end of file", extra.Field);

        var absurd = TokenizerBytes(-3);
        Assert.Equal("max_token_length", Assert.Throws<FileFormatException>(() => Llama2cTokenizerReader.Read(MappedFile.FromBytes(absurd, "tok.bin"), 1)).Field);
    }

    [SharedDataFact(Tok)]
    public void Tok512_has_512_pieces_with_sentencepiece_scores()
    {
        var t = Llama2cTokenizerReader.Read(SharedData.Require(Tok), 512);
        Assert.Equal(512, t.Pieces.Length);
        Assert.Equal("<unk>", t.Pieces[0]);
        Assert.Equal("<0x00>", t.Pieces[3]);
        Assert.Equal("<0xFF>", t.Pieces[258]);
        Assert.InRange(t.MaxTokenLength, t.Pieces.Max(p => Encoding.UTF8.GetByteCount(p)), 64);
    }
}
