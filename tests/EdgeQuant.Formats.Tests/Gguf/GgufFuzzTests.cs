using System.Buffers.Binary;
using System.Diagnostics;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Quantization;
using EdgeQuant.Formats.Gguf;
using EdgeQuant.Formats.IO;

namespace EdgeQuant.Formats.Tests.Gguf;

/// <summary>
/// A seeded mutator over valid GGUF files: bit flips, byte and integer overwrites with boundary values, truncations,
/// splices, insertions and deletions. Every outcome must be a clean parse (whose tensors can then be read and
/// dequantized) or a <see cref="BadInputException"/> naming the file; anything else, or a parse that allocates far more
/// than the input size, fails the test with the seed that reproduces it.
/// </summary>
public class GgufFuzzTests
{
    private const string Name = "fuzzed.gguf";

    private static readonly byte[][] Seeds =
    [
        GgufSamples.Small(),
        GgufSamples.Small(alignment: 64),
        GgufSamples.ToBytes(GgufSamples.AllValueTypes(), GgufSamples.SmallTensors(seed: 2)),
        GgufSamples.ToBytes(
            [
                new("general.architecture", "llama"),
                new("tokenizer.ggml.tokens", GgufValue.Array(Enumerable.Range(0, 200).Select(i => $"tok{i}").ToArray())),
                new("tokenizer.ggml.merges", GgufValue.Array(Enumerable.Range(0, 50).Select(i => $"t {i}").ToArray())),
            ],
            GgufSamples.SmallTensors(seed: 3), version: 2),
    ];

    [Fact]
    public void Five_thousand_mutated_files_parse_or_fail_cleanly()
    {
        const int Iterations = 5000;
        var rng = new Random(20261121);
        int parsed = 0, rejected = 0;
        var sw = Stopwatch.StartNew();
        for (int it = 0; it < Iterations; it++)
        {
            int seed = rng.Next();
            var input = Mutate(new Random(seed));
            switch (Run(input, seed))
            {
                case true: parsed++; break;
                case false: rejected++; break;
            }
        }
        sw.Stop();
        // Both outcomes must occur, or the mutator is not exercising the reader.
        Assert.True(parsed > 50, $"only {parsed} of {Iterations} mutants parsed");
        Assert.True(rejected > Iterations / 2, $"only {rejected} of {Iterations} mutants were rejected");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), $"fuzzing took {sw.Elapsed}");
    }

    /// <summary>True: parsed and read; false: rejected with a proper error. Any other outcome fails the test.</summary>
    private static bool Run(byte[] input, int seed)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            using var f = GgufReader.Read(MappedFile.FromBytes(input, Name), ownsFile: true);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < (1 << 20) + 64L * input.Length, $"seed {seed}: parsing {input.Length} bytes allocated {allocated} bytes");
            foreach (var t in f.Tensors)
            {
                var data = f.TensorData(t);
                Assert.Equal(t.ByteLength, data.Length);
                if (t.ElementCount <= 1 << 16) Dequantize.Row(t.Type, data, new float[t.ElementCount]);
            }
            return true;
        }
        catch (BadInputException e)
        {
            if (!e.Message.Contains(Name, StringComparison.Ordinal) || (e is FileFormatException && !e.Message.Contains("byte offset", StringComparison.Ordinal)))
                Assert.Fail($"seed {seed}: error message lacks the file name or byte offset: {e.Message}");
            return false;
        }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            Assert.Fail($"seed {seed}: {e.GetType().Name} instead of a BadInputException: {e}");
            return false;
        }
    }

    private static byte[] Mutate(Random rng)
    {
        var data = new List<byte>(Seeds[rng.Next(Seeds.Length)]);
        int mutations = 1 + rng.Next(3);
        for (int m = 0; m < mutations && data.Count > 0; m++)
        {
            int pos = rng.Next(data.Count);
            switch (rng.Next(8))
            {
                case 0: // bit flip
                    data[pos] ^= (byte)(1 << rng.Next(8));
                    break;
                case 1: // random byte
                    data[pos] = (byte)rng.Next(256);
                    break;
                case 2: // boundary integer, 4 or 8 bytes wide
                case 3:
                {
                    ulong[] interesting = [0, 1, 2, 4, 5, 31, 32, 33, 255, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1UL << 32, 1UL << 62,
                        long.MaxValue, ulong.MaxValue, (ulong)data.Count, (ulong)data.Count + 1, (ulong)data.Count - 1, (ulong)rng.Next(1 << 16),
                        2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 30];
                    ulong v = interesting[rng.Next(interesting.Length)];
                    int width = rng.Next(2) == 0 ? 4 : 8;
                    Span<byte> b = stackalloc byte[8];
                    BinaryPrimitives.WriteUInt64LittleEndian(b, v);
                    for (int i = 0; i < width && pos + i < data.Count; i++) data[pos + i] = b[i];
                    break;
                }
                case 4: // truncate
                    data.RemoveRange(pos, data.Count - pos);
                    break;
                case 5: // splice a chunk of this or another seed over this position
                {
                    var from = rng.Next(2) == 0 ? data.ToArray() : Seeds[rng.Next(Seeds.Length)];
                    int start = rng.Next(from.Length);
                    int len = Math.Min(rng.Next(1, 64), from.Length - start);
                    for (int i = 0; i < len; i++)
                    {
                        if (pos + i < data.Count) data[pos + i] = from[start + i];
                        else data.Add(from[start + i]);
                    }
                    break;
                }
                case 6: // insert random bytes
                {
                    var ins = new byte[rng.Next(1, 16)];
                    rng.NextBytes(ins);
                    data.InsertRange(pos, ins);
                    break;
                }
                case 7: // delete a range
                    data.RemoveRange(pos, Math.Min(rng.Next(1, 32), data.Count - pos));
                    break;
            }
        }
        return data.ToArray();
    }
}
