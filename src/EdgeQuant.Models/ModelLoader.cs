using EdgeQuant.Core.Errors;

namespace EdgeQuant.Models;

/// <summary>Loads a model from an HF folder, a GGUF file or a llama2.c checkpoint, detecting which by content.</summary>
public static class ModelLoader
{
    public static ModelFormat Detect(string path)
    {
        if (Directory.Exists(path))
        {
            if (File.Exists(Path.Combine(path, "config.json"))) return ModelFormat.HuggingFace;
            throw new BadInputException($"{path}: a folder but not a Hugging Face checkpoint (no config.json)");
        }
        if (!File.Exists(path)) throw new BadInputException($"{path}: no such file or folder");
        Span<byte> magic = stackalloc byte[4];
        using (var f = File.OpenRead(path))
        {
            if (f.ReadAtLeast(magic, 4, throwOnEndOfStream: false) == 4 && magic.SequenceEqual("GGUF"u8)) return ModelFormat.Gguf;
        }
        if (path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)) return ModelFormat.Llama2c;
        throw new BadInputException($"{path}: unknown model format (expected an HF folder with config.json, a GGUF file, or a llama2.c .bin checkpoint)");
    }

    /// <param name="path">HF folder, GGUF file or llama2.c checkpoint.</param>
    /// <param name="tokenizerPath">For llama2.c: its tokenizer.bin; when null, a tok*.bin or tokenizer.bin beside the checkpoint is used.</param>
    public static Model Load(string path, string? tokenizerPath = null) => Detect(path) switch
    {
        ModelFormat.Gguf => Loading.GgufModelLoader.Load(path),
        ModelFormat.HuggingFace => Loading.HuggingFaceModelLoader.Load(path),
        ModelFormat.Llama2c => Loading.Llama2cModelLoader.Load(path, tokenizerPath),
        var f => throw new BadInputException($"{path}: format {f} is not supported"),
    };
}
