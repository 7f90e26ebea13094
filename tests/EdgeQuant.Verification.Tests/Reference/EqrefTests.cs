using System.Buffers.Binary;
using EdgeQuant.Core.Errors;
using EdgeQuant.Verification.Reference;

namespace EdgeQuant.Verification.Tests.Reference;

public class EqrefTests
{
    [Fact]
    public void Full_round_trip_keeps_header_tokens_and_log_probs_within_half_a_step()
    {
        var s = RefTestData.Make(vocab: 301, nCtx: 16, nChunks: 3, topK: null, seed: 1);
        using var f = ReferenceFile.FromBytes(s.Bytes, "r.eqref");
        Assert.Equal(s.Header.Mode, f.Header.Mode);
        Assert.Equal((301, 16, 3, 0, 1), (f.Header.NVocab, f.Header.NCtx, f.Header.NChunks, f.Header.TopK, f.Header.Bos!.Value));
        Assert.Equal(s.Header.TextTokens, f.Header.TextTokens);
        Assert.Equal(s.Header.ModelSha256, f.Header.ModelSha256);
        Assert.Equal(s.Header.TextSha256, f.Header.TextSha256);
        Assert.Equal("synthetic.gguf", f.Header.ModelName);
        Assert.Equal(s.Tokens, f.Tokens.ToArray());
        // Odd vocabulary: llama-perplexity's record pads to an even count of uint16 (nv = 2*((301+1)/2) + 4).
        Assert.Equal(2 * (2 * ((301 + 1) / 2) + 4), f.Header.RecordBytes);

        int rows = f.Header.ScoredPerChunk;
        for (int c = 0; c < 3; c++)
        {
            for (int k = 0; k < rows; k++)
            {
                var exact = RefTestData.LogSoftmax(s.BaseLogits[c * rows + k]);
                var r = f.Full(c, k);
                double top = exact.Max();
                for (int i = 0; i < exact.Length; i++)
                {
                    double decoded = r.LogProb(i);
                    if (exact[i] > top - 16 + 1e-3)
                        Assert.True(Math.Abs(decoded - exact[i]) <= r.Scale * 0.5 + 2e-5, $"chunk {c} pos {k} id {i}: {decoded} vs {exact[i]}");
                    else
                        Assert.True(decoded <= top - 16 + 1e-3, "entries below the 16-nat window decode at its floor");
                }
            }
        }
    }

    [Fact]
    public void Full_record_matches_llama_perplexity_encoding_written_out_in_the_test()
    {
        // llama-perplexity's log_softmax(n_vocab, logits, log_prob, tok): min clamped to max-16, scale=(max-min)/65535,
        // q = nearest_int((l-min)/scale) for l > min else 0. Written here independently of LogProbEncoding.
        var rng = new Random(5);
        var l = RefTestData.Logits(rng, 1000);
        var rec = new byte[ReferenceFormat.RecordBytes(ReferenceMode.Full, 1000, 0)];
        LogProbEncoding.EncodeFull(l, rec);
        float max = l.Max(), min = Math.Max(l.Min(), max - 16);
        double sum = l.Sum(x => (double)MathF.Exp(x - max));
        float lse = (float)Math.Log(sum);
        float scale = (max - min) / 65535f;
        Assert.Equal(scale, BinaryPrimitives.ReadSingleLittleEndian(rec));
        Assert.Equal(min - max - lse, BinaryPrimitives.ReadSingleLittleEndian(rec.AsSpan(4)));
        float inv = 1 / scale;
        for (int i = 0; i < l.Length; i++)
        {
            int expected = l[i] > min ? (int)MathF.Round(inv * (l[i] - min), MidpointRounding.ToEven) : 0;
            Assert.Equal(expected, BinaryPrimitives.ReadUInt16LittleEndian(rec.AsSpan(8 + 2 * i)));
        }
    }

    [Fact]
    public void TopK_round_trip_keeps_the_exact_top_ids_log_probs_target_and_tail()
    {
        var s = RefTestData.Make(vocab: 500, nCtx: 12, nChunks: 2, topK: 7, seed: 2);
        using var f = ReferenceFile.FromBytes(s.Bytes, "r.eqref");
        Assert.Equal(ReferenceMode.TopK, f.Header.Mode);
        Assert.Equal(7, f.Header.TopK);
        Assert.Equal(8 + 8 * 7, f.Header.RecordBytes);
        int rows = f.Header.ScoredPerChunk;
        for (int r = 0; r < s.BaseLogits.Length; r++)
        {
            var exact = RefTestData.LogSoftmax(s.BaseLogits[r]);
            var order = Enumerable.Range(0, exact.Length).OrderByDescending(i => exact[i]).ThenBy(i => i).Take(7).ToArray();
            var rec = f.TopK(r / rows, r % rows);
            Assert.Equal(7, rec.Count);
            for (int j = 0; j < 7; j++)
            {
                Assert.Equal(order[j], rec.Id(j));
                Assert.Equal(exact[order[j]], rec.LogProb(j), 1e-5);
            }
            Assert.Equal(exact[s.Targets[r]], rec.TargetLogProb, 1e-5);
            double tail = exact.Where((_, i) => !order.Contains(i)).Sum(Math.Exp);
            Assert.Equal(Math.Log(tail), rec.LogTailMass, 1e-4);
        }
    }

    [Fact]
    public void TopK_covering_the_whole_vocabulary_has_no_tail()
    {
        var s = RefTestData.Make(vocab: 40, nCtx: 8, nChunks: 1, topK: 40, seed: 3);
        using var f = ReferenceFile.FromBytes(s.Bytes, "r.eqref");
        Assert.True(float.IsNegativeInfinity(f.TopK(0, 0).LogTailMass));
    }

    [Fact]
    public void Writer_replaces_the_output_only_on_completion()
    {
        var dir = Directory.CreateTempSubdirectory("eqref");
        try
        {
            var path = Path.Combine(dir.FullName, "r.eqref");
            File.WriteAllText(path, "old");
            var h = new ReferenceHeader(ReferenceMode.Full, 10, 8, 1, 0, null, 8, new byte[32], new byte[32], "m");
            using (var w = new ReferenceWriter(path, h, new int[8]))
            {
                w.Add(new float[10], 0); // abandoned before completion
            }
            Assert.Equal("old", File.ReadAllText(path));
            Assert.Single(Directory.GetFiles(dir.FullName));
        }
        finally
        {
            dir.Delete(true);
        }
    }

    private static byte[] Small() => RefTestData.Make(vocab: 50, nCtx: 8, nChunks: 2, topK: null, seed: 4).Bytes;
    private static byte[] SmallTopK() => RefTestData.Make(vocab: 50, nCtx: 8, nChunks: 2, topK: 5, seed: 4).Bytes;

    private static FileFormatException Refused(byte[] bytes) =>
        Assert.Throws<FileFormatException>(() => ReferenceFile.FromBytes(bytes, "bad.eqref").Dispose());

    [Fact]
    public void Every_truncation_is_refused_naming_the_file_and_an_offset()
    {
        var good = Small();
        for (int len = 0; len < good.Length; len += len < 200 ? 1 : 37)
        {
            var e = Refused(good[..len]);
            Assert.Equal("bad.eqref", e.FilePath);
            Assert.NotNull(e.Offset);
        }
    }

    [Fact]
    public void Wrong_magic_version_and_trailing_bytes_are_refused()
    {
        var b = Small();
        b[0] = (byte)'X';
        Assert.Equal("magic", Refused(b).Field);

        b = Small();
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), 2);
        var e = Refused(b);
        Assert.Equal("version", e.Field);
        Assert.Contains("newer", e.Message);

        b = [.. Small(), 0];
        Assert.Equal("file length", Refused(b).Field);
    }

    [Fact]
    public void A_flipped_bit_anywhere_is_caught_by_the_checksum_or_a_field_check()
    {
        var good = Small();
        var rng = new Random(9);
        for (int trial = 0; trial < 300; trial++)
        {
            var b = (byte[])good.Clone();
            int at = rng.Next(b.Length);
            b[at] ^= (byte)(1 << rng.Next(8));
            var e = Refused(b);
            Assert.NotNull(e.Offset);
        }
        var body = (byte[])good.Clone();
        body[^40] ^= 1;
        var c = Refused(body);
        Assert.Equal("checksum", c.Field);
        Assert.Equal(good.Length - 32, c.Offset);
    }

    [Theory]
    [InlineData(20, 0u, "n_vocab")]
    [InlineData(20, 1u << 25, "n_vocab")]
    [InlineData(24, 3u, "n_ctx")]
    [InlineData(28, 0u, "n_chunks")]
    [InlineData(16, 7u, "mode")]
    [InlineData(32, 3u, "top_k")]
    [InlineData(36, 50u, "bos")]
    [InlineData(12, 999u, "header_bytes")]
    [InlineData(112, 5000u, "model_name_length")]
    public void Lying_header_fields_are_refused_by_name_and_offset(int offset, uint value, string field)
    {
        var b = Small();
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(offset), value);
        var e = Refused(b);
        Assert.Equal(field, e.Field);
        Assert.Equal(offset, e.Offset);
    }

    [Fact]
    public void A_lying_chunk_count_is_a_length_mismatch_not_an_allocation()
    {
        var b = Small();
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(28), 1 << 24);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(40), 8UL << 24); // consistent text length, so the size check is reached
        var e = Refused(b);
        Assert.Equal("file length", e.Field);
        Assert.Contains("implies", e.Message);
    }

    [Fact]
    public void Out_of_range_token_and_bad_records_are_named_when_the_checksum_is_right()
    {
        var b = Small();
        int header = (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(12));
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(header + 4 * 3), 50);
        RefTestData.FixChecksum(b);
        var e = Refused(b);
        Assert.Equal("tokens[3]", e.Field);
        Assert.Equal(header + 12, e.Offset);

        b = Small();
        int records = header + 4 * 8 * 2;
        BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(records), float.NaN);
        RefTestData.FixChecksum(b);
        e = Refused(b);
        Assert.Contains("record 0", e.Field);
        Assert.Contains("scale", e.Field);
        Assert.Equal(records, e.Offset);

        b = Small();
        BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(records + 4), 0.5f);
        RefTestData.FixChecksum(b);
        Assert.Contains("min_log_prob", Refused(b).Field);
    }

    [Fact]
    public void TopK_records_with_bad_ids_order_or_duplicates_are_refused()
    {
        var good = SmallTopK();
        int header = (int)BinaryPrimitives.ReadUInt32LittleEndian(good.AsSpan(12));
        int rec = header + 4 * 8 * 2 + (8 + 40); // second record

        var b = (byte[])good.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(rec + 8 + 4 * 2), 77);
        RefTestData.FixChecksum(b);
        var e = Refused(b);
        Assert.Contains("record 1", e.Field);
        Assert.Contains("id[2]", e.Field);
        Assert.Equal(rec + 16, e.Offset);

        b = (byte[])good.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(rec + 8 + 4), BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(rec + 8)));
        RefTestData.FixChecksum(b);
        Assert.Contains("twice", Refused(b).Message);

        b = (byte[])good.Clone();
        BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(rec + 8 + 20 + 4 * 3), -0.0001f);
        RefTestData.FixChecksum(b);
        Assert.Contains("log_prob[3]", Refused(b).Field);

        b = (byte[])good.Clone();
        BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(rec), float.PositiveInfinity);
        RefTestData.FixChecksum(b);
        Assert.Contains("target log-prob", Refused(b).Field);
    }

    [Fact]
    public void Missing_file_is_bad_input()
    {
        Assert.Throws<BadInputException>(() => ReferenceFile.Open(Path.Combine(Path.GetTempPath(), Guid.NewGuid() + ".eqref")));
    }
}
