using System.Text;

namespace EdgeQuant.Fixtures;

/// <summary>
/// Deterministic random weights: each tensor's values come from its own stream, seeded by the fixture seed and the
/// tensor's canonical name, so any tensor can be produced alone, in any order, by any writer, with the same bits.
/// </summary>
public static class FixtureWeights
{
    /// <summary>Canonical (GGUF-layout) values of one tensor; rounded through F16 when the fixture is F16 so every format holds the same numbers.</summary>
    public static float[] Generate(FixtureSpec spec, string name, long[] shape)
    {
        long n = shape.Aggregate(1L, (a, b) => checked(a * b));
        var values = new float[n];
        var rng = new SplitMix64(spec.Seed ^ Fnv1a(name));
        bool isNorm = name.Contains("_norm.", StringComparison.Ordinal);
        bool isBias = name.EndsWith(".bias", StringComparison.Ordinal);
        // Norm gains near 1 and small biases keep activations in a sane range; matrices get a fan-in scale so a
        // random model's logits neither vanish nor explode (useful for quantization and runtime comparisons).
        float center = isNorm && !isBias ? 1f : 0f;
        float scale = isNorm ? 0.1f : isBias ? 0.02f : (float)(1.0 / Math.Sqrt(shape[^1]));
        for (long i = 0; i < n; i++) values[i] = center + scale * rng.NextSymmetric();
        if (spec.Dtype == FixtureDtype.F16) RoundThroughHalf(values);
        return values;
    }

    private static void RoundThroughHalf(float[] values)
    {
        // Vectorized conversions, in chunks so a 262 MB embedding needs only a small scratch buffer.
        const int Chunk = 1 << 16;
        var half = new Half[Chunk];
        for (int i = 0; i < values.Length; i += Chunk)
        {
            var part = values.AsSpan(i, Math.Min(Chunk, values.Length - i));
            System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(part, half.AsSpan(0, part.Length));
            System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(half.AsSpan(0, part.Length), part);
        }
    }

    private static ulong Fnv1a(string s)
    {
        ulong h = 0xcbf29ce484222325;
        foreach (byte b in Encoding.UTF8.GetBytes(s))
        {
            h ^= b;
            h *= 0x100000001b3;
        }
        return h;
    }

    /// <summary>SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and the same on every platform and runtime version.</summary>
    private struct SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        public ulong Next()
        {
            ulong z = _state += 0x9E3779B97F4A7C15;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
            return z ^ (z >> 31);
        }

        /// <summary>Uniform in [-1, 1) from the top 24 bits, exactly representable as float.</summary>
        public float NextSymmetric() => (Next() >> 40) * (2f / (1 << 24)) - 1f;
    }
}
