using System.Buffers.Binary;
using System.Text;
using EdgeQuant.Core.Errors;
using EdgeQuant.Formats.Safetensors;

namespace EdgeQuant.Formats.Tests.Safetensors;

/// <summary>
/// A seeded mutator over safetensors files: byte flips, token splices, digit edits, truncations and lying header
/// lengths. Every input must either read cleanly (and then every tensor's bytes must be readable) or fail with a
/// <see cref="BadInputException"/>; anything else (IndexOutOfRange, Overflow, OutOfMemory, a hang) is a bug.
/// </summary>
public class SafetensorsFuzzTests
{
    private static readonly string[] Splices =
    [
        "{", "}", "[", "]", ",", ":", "\"", "-1", "0", "1e9", "18446744073709551615", "99999999999999999999999", "null", "true",
        "\"__metadata__\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"F32\"", "\"BF16\"", "\"BOOL\"", "\\u0000", "\\ud800", "\u00e9", " ",
    ];

    private static byte[][] Seeds()
    {
        var list = new List<byte[]> { SafetensorsTestFiles.Valid() };
        list.Add(SafetensorsTestFiles.Build("""{"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"BOOL","shape":[3],"data_offsets":[8,11]},"c":{"dtype":"U8","shape":[0],"data_offsets":[11,11]}}    """, 11));
        list.Add(SafetensorsTestFiles.Build("""{"__metadata__":{"format":"pt","x":"y"},"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}""", 8));
        return list.ToArray();
    }

    [Fact]
    public void Thousands_of_mutated_headers_read_cleanly_or_fail_as_bad_input()
    {
        var seeds = Seeds();
        var rng = new Random(20241121);
        int clean = 0, rejected = 0;
        const int Iterations = 6000;
        for (int iter = 0; iter < Iterations; iter++)
        {
            var input = Mutate(seeds[iter % seeds.Length], rng);
            try
            {
                using var f = SafetensorsTestFiles.Read(input, "fuzz.safetensors");
                long total = 0;
                foreach (var t in f.Tensors) total += f.GetBytes(t).Length;
                Assert.True(total <= input.Length);
                clean++;
            }
            catch (BadInputException e)
            {
                Assert.DoesNotContain('\n', e.Message);
                Assert.StartsWith("fuzz.safetensors: ", e.Message);
                rejected++;
            }
            catch (Exception e)
            {
                Assert.Fail($"iteration {iter}: {e.GetType().Name}: {e.Message}\ninput: {Convert.ToBase64String(input)}");
            }
        }
        // Both outcomes must actually occur, or the mutator is not exercising the reader.
        Assert.True(clean > Iterations / 50, $"only {clean} clean reads");
        Assert.True(rejected > Iterations / 2, $"only {rejected} rejections");
    }

    private static byte[] Mutate(byte[] seed, Random rng)
    {
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(seed);
        var header = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(seed, 8, (int)n)).ToList();
        var data = seed.AsSpan(8 + (int)n).ToArray();
        int edits = 1 + rng.Next(3);
        bool keepLength = false;
        for (int e = 0; e < edits; e++)
        {
            switch (rng.Next(7))
            {
                case 0 when header.Count > 0:
                    header[rng.Next(header.Count)] = (byte)rng.Next(256);
                    break;
                case 1:
                    header.InsertRange(rng.Next(header.Count + 1), Encoding.UTF8.GetBytes(Splices[rng.Next(Splices.Length)]));
                    break;
                case 2 when header.Count > 1:
                    {
                        int at = rng.Next(header.Count), len = Math.Min(header.Count - at, 1 + rng.Next(6));
                        header.RemoveRange(at, len);
                        break;
                    }
                case 3:
                    {
                        // Nudge a digit: the commonest way a real file lies (an offset or a dimension off by some).
                        var digits = Enumerable.Range(0, header.Count).Where(i => header[i] is >= (byte)'0' and <= (byte)'9').ToList();
                        if (digits.Count > 0) header[digits[rng.Next(digits.Count)]] = (byte)('0' + rng.Next(10));
                        break;
                    }
                case 4:
                    data = data.AsSpan(0, rng.Next(data.Length + 1)).ToArray();
                    break;
                case 5:
                    Array.Resize(ref data, data.Length + rng.Next(1, 9));
                    break;
                default:
                    keepLength = true;
                    break;
            }
        }
        var bytes = SafetensorsTestFiles.Build(header.ToArray(), 0);
        bytes = [.. bytes, .. data];
        if (keepLength && rng.Next(2) == 0)
            BinaryPrimitives.WriteUInt64LittleEndian(bytes, rng.Next(3) switch { 0 => (ulong)rng.Next(bytes.Length + 16), 1 => ulong.MaxValue - (ulong)rng.Next(16), _ => (ulong)n });
        return bytes;
    }
}
