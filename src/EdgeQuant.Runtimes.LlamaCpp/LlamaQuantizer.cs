using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes.LlamaCpp.Native;

namespace EdgeQuant.Runtimes.LlamaCpp;

/// <summary>llama.cpp's own quantizer (<c>llama_model_quantize</c>), the peer EdgeQuant's quantizers are compared with.</summary>
public static class LlamaQuantizer
{
    /// <summary>
    /// Quantizes <paramref name="input"/> (GGUF) into <paramref name="output"/> with llama.cpp's default tensor-type
    /// policy for <paramref name="fileType"/>. Writes a temporary file beside the output and renames it on success.
    /// </summary>
    public static unsafe void Quantize(string input, string output, LlamaFileType fileType, int threads = 0)
    {
        if (!File.Exists(input)) throw new BadInputException($"{input}: no such file");
        if (fileType == LlamaFileType.Guessed || !Enum.IsDefined(fileType))
            throw new BadInputException($"{fileType}: not a file type llama.cpp quantizes to");
        LlamaLibrary.EnsureInitialized();

        var full = Path.GetFullPath(output);
        var dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new BadInputException($"{output}: folder {dir} does not exist");
        var tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        var p = LlamaNative.llama_model_quantize_default_params();
        p.ftype = fileType;
        p.nthread = threads;
        LlamaLog.ClearHistory();
        try
        {
            uint rc = LlamaNative.llama_model_quantize(Path.GetFullPath(input), tmp, &p);
            if (rc != 0)
                throw new BadInputException($"{input}: llama_model_quantize to {fileType} failed with {rc}{LlamaModel.Reason()}");
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
