using System.Security.Cryptography;
using EdgeQuant.Verification.Reference;

namespace EdgeQuant.Verification.Tests.Reference;

/// <summary>Synthetic references: seeded random logits shaped like an LM's (a few likely tokens, a long tail), written with <see cref="ReferenceWriter"/>.</summary>
internal static class RefTestData
{
    /// <summary>Logits with a peaked head (so top-1 and the 16-nat window matter) and a spread tail.</summary>
    public static float[] Logits(Random rng, int vocab, float temperature = 3f)
    {
        var l = new float[vocab];
        for (int i = 0; i < vocab; i++) l[i] = (float)(rng.NextDouble() * 2 - 1) * temperature;
        // A handful of strong candidates, like a trained model's next-token distribution.
        for (int j = 0; j < 4; j++) l[rng.Next(vocab)] += 6 + 2 * (float)rng.NextDouble();
        return l;
    }

    /// <summary>The candidate: the base logits plus noise of the given size (a "quantized" model).</summary>
    public static float[] Perturb(Random rng, float[] logits, float noise)
    {
        var c = new float[logits.Length];
        for (int i = 0; i < c.Length; i++) c[i] = logits[i] + (float)(rng.NextDouble() * 2 - 1) * noise;
        return c;
    }

    public sealed record Synthetic(byte[] Bytes, ReferenceHeader Header, int[] Tokens, float[][] BaseLogits, float[][] CandLogits, int[] Targets);

    /// <summary>
    /// A whole reference in memory plus the logits it was made from and a perturbed candidate's logits. Each scored
    /// token is sampled from the base distribution at the position before it, as a text the model knows would be.
    /// </summary>
    public static Synthetic Make(int vocab, int nCtx, int nChunks, int? topK, int seed, float noise = 0.5f, int? bos = 1)
    {
        var rng = new Random(seed);
        int rows = ReferenceFormat.ScoredPerChunk(nCtx), first = ReferenceFormat.FirstScored(nCtx);
        var tokens = new int[nCtx * nChunks];
        for (int i = 0; i < tokens.Length; i++) tokens[i] = rng.Next(vocab);
        var baseLogits = new float[nChunks * rows][];
        var cand = new float[nChunks * rows][];
        var targets = new int[nChunks * rows];
        for (int c = 0; c < nChunks; c++)
        {
            for (int k = 0; k < rows; k++)
            {
                int r = c * rows + k;
                baseLogits[r] = Logits(rng, vocab);
                cand[r] = Perturb(rng, baseLogits[r], noise);
                targets[r] = Sample(rng, baseLogits[r]);
                tokens[c * nCtx + first + k + 1] = targets[r];
            }
        }
        var header = new ReferenceHeader(topK is null ? ReferenceMode.Full : ReferenceMode.TopK, vocab, nCtx, nChunks, topK ?? 0, bos,
            tokens.Length + 7, SHA256.HashData("model"u8), SHA256.HashData("text"u8), "synthetic.gguf");
        var dir = Path.Combine(Path.GetTempPath(), "eqref-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var path = Path.Combine(dir, "r.eqref");
            using (var w = new ReferenceWriter(path, header, tokens))
            {
                for (int r = 0; r < baseLogits.Length; r++) w.Add(baseLogits[r], targets[r]);
                w.Complete();
            }
            return new Synthetic(File.ReadAllBytes(path), header, tokens, baseLogits, cand, targets);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static int Sample(Random rng, float[] logits)
    {
        var p = LogSoftmax(logits).Select(Math.Exp).ToArray();
        double u = rng.NextDouble(), acc = 0;
        for (int i = 0; i < p.Length; i++)
        {
            acc += p[i];
            if (u < acc) return i;
        }
        return p.Length - 1;
    }

    /// <summary>Recomputes the trailing SHA-256 after a test edits the body, so field checks (not the checksum) are exercised.</summary>
    public static void FixChecksum(byte[] bytes)
    {
        var hash = SHA256.HashData(bytes.AsSpan(0, bytes.Length - ReferenceFormat.ChecksumBytes));
        hash.CopyTo(bytes, bytes.Length - ReferenceFormat.ChecksumBytes);
    }

    /// <summary>Exact log-softmax in double.</summary>
    public static double[] LogSoftmax(float[] logits)
    {
        double max = logits.Max();
        double sum = logits.Sum(l => Math.Exp(l - max));
        double lse = max + Math.Log(sum);
        return logits.Select(l => l - lse).ToArray();
    }
}
