using System.Text;
using EdgeQuant.Compression.OnnxQuant;
using EdgeQuant.Core.Errors;
using EdgeQuant.Fixtures;
using EdgeQuant.Models;
using EdgeQuant.Models.Tokenizers;
using EdgeQuant.Testing;

namespace EdgeQuant.Compression.Tests.OnnxQuant;

/// <summary>
/// <see cref="CalibrationData"/>: files, folders, globs and JSONL become the tokenizer's own stream cut into windows;
/// the windows are checked against an independent tokenization of the same text, and bad input is refused naming the
/// file and the line or byte offset.
/// </summary>
public sealed class CalibrationDataTests : IDisposable
{
    private readonly TempDir _dir = new("eqcalib");
    private readonly Tokenizer _tokenizer;

    public CalibrationDataTests()
    {
        // The fixture's SentencePiece vocabulary (byte fallback) adds BOS, as Llama vocabularies do.
        var path = FixtureMaker.Write(FixtureSpec.Preset(FixtureArch.Llama, "tiny") with { Seed = 3 }, _dir.File("model"), FixtureFormats.Gguf).GgufPath!;
        using var model = ModelLoader.Load(path);
        _tokenizer = Tokenizer.FromModel(model);
        Assert.True(_tokenizer.AddBos);
    }

    public void Dispose() => _dir.Dispose();

    private static string Words(int seed, int count)
    {
        string[] vocab = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "home", "quickly", "with", "its", "friend"];
        var rng = new Random(seed);
        var sb = new StringBuilder();
        for (int i = 0; i < count; i++) sb.Append(vocab[rng.Next(vocab.Length)]).Append(i % 11 == 10 ? ".\n" : " ");
        return sb.ToString();
    }

    private string Write(string name, string text)
    {
        string path = _dir.File(name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text, new UTF8Encoding(false));
        return path;
    }

    private CalibrationSet Load(CalibrationDataOptions o, params string[] specs) => CalibrationData.Load(specs, _tokenizer, o);

    private int[] Stream(params string[] documents) =>
        documents.SelectMany(d => _tokenizer.Encode(d.EndsWith('\n') ? d[..^1] : d, addSpecial: false)).ToArray();

    /// <summary>Where each window lies in the stream (the first token is BOS, so it is matched from the second).</summary>
    private static int[] Locate(int[] stream, CalibrationSet set)
    {
        var offsets = new List<int>();
        foreach (var seq in set.Sequences)
        {
            var tail = seq.AsSpan(1);
            int at = -1;
            for (int o = 0; o + seq.Length <= stream.Length; o++)
                if (stream.AsSpan(o + 1, tail.Length).SequenceEqual(tail) && (offsets.Count == 0 || o >= offsets[^1] + seq.Length)) { at = o; break; }
            Assert.True(at >= 0, "a calibration window is not a slice of the stream after the previous one");
            offsets.Add(at);
        }
        return offsets.ToArray();
    }

    [Fact]
    public void A_text_file_becomes_disjoint_bos_led_windows_of_its_token_stream()
    {
        string text = Words(1, 2000);
        string file = Write("a.txt", text);
        var set = Load(new CalibrationDataOptions { Samples = 6, SequenceLength = 64, Seed = 9 }, file);

        var stream = Stream(text);
        Assert.Equal(stream.Length, set.SourceTokens);
        Assert.Equal(6, set.Sequences.Count);
        Assert.All(set.Sequences, s => Assert.Equal(64, s.Length));
        Assert.All(set.Sequences, s => Assert.Equal(_tokenizer.BosId, s[0]));
        Assert.False(set.Overlapping);
        Assert.Equal(new[] { file }, set.Files);
        var offsets = Locate(stream, set);
        Assert.Equal(offsets.Order(), offsets);
        // Random offsets: not simply the first six windows.
        Assert.NotEqual(Enumerable.Range(0, 6).Select(i => i * 64), offsets);
    }

    [Fact]
    public void The_same_seed_gives_the_same_sequences_and_another_seed_others()
    {
        string file = Write("a.txt", Words(2, 3000));
        var o = new CalibrationDataOptions { Samples = 5, SequenceLength = 50, Seed = 1 };
        var a = Load(o, file);
        var b = Load(o, file);
        var c = Load(o with { Seed = 2 }, file);
        Assert.Equal(a.Sequences, b.Sequences);
        Assert.Equal(a.Sha256, b.Sha256);
        Assert.NotEqual(a.Sequences, c.Sequences);
        Assert.Equal(a.Sha256, c.Sha256); // the hash is of the inputs, not of the sampling
    }

    [Fact]
    public void A_short_text_gives_evenly_spread_overlapping_windows()
    {
        string text = Words(3, 60);
        string file = Write("a.txt", text);
        var stream = Stream(text);
        int len = stream.Length / 2;
        var set = Load(new CalibrationDataOptions { Samples = 3, SequenceLength = len }, file);
        Assert.True(set.Overlapping);
        Assert.Equal(3, set.Sequences.Count);
        int last = stream.Length - len;
        int[] expected = [0, (int)Math.Round(last / 2.0, MidpointRounding.AwayFromZero), last];
        for (int i = 0; i < 3; i++)
            Assert.Equal(stream.AsSpan(expected[i] + 1, len - 1).ToArray(), set.Sequences[i][1..]);
    }

    [Fact]
    public void A_folder_and_a_glob_read_their_files_in_name_order_like_the_explicit_list()
    {
        string b = Write("corpus/b.txt", Words(4, 400)), a = Write("corpus/a.txt", Words(5, 400)), c = Write("corpus/c.jsonl", "{\"text\": \"" + Words(6, 300).Replace("\n", "\\n") + "\"}\n");
        Write("corpus/notes.md", "not calibration text");
        var o = new CalibrationDataOptions { Samples = 4, SequenceLength = 80, Seed = 5 };
        var folder = Load(o, _dir.File("corpus"));
        var list = Load(o, a, b, c);
        Assert.Equal(new[] { a, b, c }, folder.Files);
        Assert.Equal(list.Sequences, folder.Sequences);
        Assert.Equal(list.Sha256, folder.Sha256);

        var glob = Load(o, Path.Combine(_dir.File("corpus"), "*.txt"));
        Assert.Equal(new[] { a, b }, glob.Files);
        Assert.Equal(Stream(File.ReadAllText(a), File.ReadAllText(b)).Length, glob.SourceTokens);
        Assert.NotEqual(folder.Sha256, glob.Sha256);
    }

    [Fact]
    public void Jsonl_records_are_documents_like_separate_text_files()
    {
        string[] docs = [Words(7, 500), Words(8, 500), Words(9, 500)];
        var jsonl = new StringBuilder();
        foreach (var d in docs) jsonl.Append("{\"id\": 1, \"body\": ").Append(System.Text.Json.JsonSerializer.Serialize(d)).Append("}\r\n\n");
        string j = Write("d.jsonl", jsonl.ToString());
        string[] files = docs.Select((d, i) => Write($"d{i}.txt", d + "\n")).ToArray();
        var o = new CalibrationDataOptions { Samples = 7, SequenceLength = 100, Seed = 3, JsonlField = "body" };
        var fromJsonl = Load(o, j);
        var fromText = Load(o, files);
        Assert.Equal(Stream(docs).Length, fromJsonl.SourceTokens);
        Assert.Equal(fromText.Sequences, fromJsonl.Sequences);
    }

    [Fact]
    public void A_leading_utf8_bom_is_not_text()
    {
        string text = Words(10, 300);
        string plain = Write("plain.txt", text);
        string withBom = _dir.File("bom.txt");
        File.WriteAllText(withBom, text, new UTF8Encoding(true));
        var o = new CalibrationDataOptions { Samples = 2, SequenceLength = 40 };
        Assert.Equal(Load(o, plain).Sequences, Load(o, withBom).Sequences);
    }

    [Fact]
    public void Explicit_bos_and_a_vocabulary_without_bos()
    {
        string file = Write("a.txt", Words(11, 500));
        var set = Load(new CalibrationDataOptions { Samples = 2, SequenceLength = 30, Bos = 7 }, file);
        Assert.All(set.Sequences, s => Assert.Equal(7, s[0]));
    }

    private BadInputException Refused(CalibrationDataOptions o, params string[] specs) =>
        Assert.Throws<BadInputException>(() => Load(o, specs));

    [Fact]
    public void Fewer_tokens_than_one_sequence_is_refused_naming_the_file_and_the_counts()
    {
        string file = Write("short.txt", "the cat sat");
        int n = Stream("the cat sat").Length;
        var e = Refused(new CalibrationDataOptions { SequenceLength = n + 1 }, file);
        Assert.Contains(file, e.Message);
        Assert.Contains($"tokenizes to {n} tokens", e.Message);
        Assert.Contains($"--calib-seq-len {n + 1}", e.Message);
        Assert.Equal(ExitCodes.BadInput, e.ExitCode);
    }

    [Fact]
    public void An_empty_folder_a_glob_matching_nothing_and_a_missing_file_are_refused()
    {
        Directory.CreateDirectory(_dir.File("empty"));
        Write("other/readme.md", "x");
        var o = new CalibrationDataOptions();
        Assert.Contains("holds no .txt or .jsonl files", Refused(o, _dir.File("empty")).Message);
        Assert.Contains("holds no .txt or .jsonl files", Refused(o, _dir.File("other")).Message);
        Assert.Contains("matches no file", Refused(o, Path.Combine(_dir.File("other"), "*.txt")).Message);
        Assert.Contains("wildcards are supported in the file name only", Refused(o, Path.Combine(_dir.File("o*"), "a.txt")).Message);
        Assert.Contains("no such calibration file", Refused(o, _dir.File("missing.txt")).Message);
        Assert.Contains("no calibration files", Assert.Throws<BadInputException>(() => CalibrationData.Load([], _tokenizer, o)).Message);
    }

    [Theory]
    [InlineData("{\"text\": \"fine\"}\n{\"text\": \"also fine\"}\nnot json\n", 3, "is not JSON")]
    [InlineData("{\"text\": \"fine\"}\n\n{\"title\": \"no text\"}\n", 3, "has no \"text\" field")]
    [InlineData("{\"text\": 12}\n", 1, "is a number, not a string")]
    [InlineData("[\"text\"]\n", 1, "not an object")]
    [InlineData("{\"text\": \"unterminated}\n", 1, "is not JSON")]
    public void A_bad_jsonl_line_is_refused_with_its_line_number(string content, int line, string problem)
    {
        string file = Write("bad.jsonl", content);
        var e = Refused(new CalibrationDataOptions { SequenceLength = 2 }, file);
        Assert.Contains(file, e.Message);
        Assert.Contains($"line {line} ", e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Theory]
    [InlineData("a.txt")]
    [InlineData("a.jsonl")]
    public void Invalid_utf8_is_refused_with_its_byte_offset(string name)
    {
        string file = _dir.File(name);
        var bytes = Encoding.UTF8.GetBytes("{\"text\": \"caf\u00e9 ok\"}\n{\"text\": \"x").Concat(new byte[] { 0xC3, 0x28 }).Concat("\"}\n"u8.ToArray()).ToArray();
        File.WriteAllBytes(file, bytes);
        var e = Refused(new CalibrationDataOptions { SequenceLength = 2 }, file);
        Assert.Contains(file, e.Message);
        Assert.Contains($"invalid UTF-8 at byte offset {bytes.Length - 5}", e.Message);
    }

    [Theory]
    [InlineData(0, 512, "--calib-samples")]
    [InlineData(4, 1, "--calib-seq-len")]
    [InlineData(1 << 20, 1 << 12, "calibration tokens")]
    public void Impossible_options_are_refused_before_reading(int samples, int len, string what)
    {
        var e = Refused(new CalibrationDataOptions { Samples = samples, SequenceLength = len }, _dir.File("never-read.txt"));
        Assert.Contains(what, e.Message);
    }

    [SharedDataFact("models/stories260K/stories260K.gguf", "corpus/tinystories-sample.txt")]
    public void Stories260K_on_the_tinystories_sample()
    {
        using var model = ModelLoader.Load(SharedData.Require("models/stories260K/stories260K.gguf"));
        var tok = Tokenizer.FromModel(model);
        string text = SharedData.Require("corpus/tinystories-sample.txt");
        var set = CalibrationData.Load([text], tok, new CalibrationDataOptions { Samples = 32, SequenceLength = 256, Seed = 42 });
        string content = File.ReadAllText(text);
        var stream = tok.Encode(content.EndsWith('\n') ? content[..^1] : content, addSpecial: false);
        Assert.Equal(stream.Length, set.SourceTokens);
        Assert.Equal(32, set.Sequences.Count);
        Assert.False(set.Overlapping);
        Assert.Equal(32, Locate(stream, set).Distinct().Count());
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            BitConverter.GetBytes(new FileInfo(text).Length).Concat(File.ReadAllBytes(text)).ToArray())), set.Sha256);
    }
}
