using System.Runtime.InteropServices;
using System.Text;
using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes.LlamaCpp.Native;

namespace EdgeQuant.Runtimes.LlamaCpp;

/// <summary>The knobs of <c>llama_model_quantize_params</c> that llama-quantize exposes.</summary>
public sealed record LlamaQuantizeOptions
{
    /// <summary><c>nthread</c>; 0 uses every core.</summary>
    public int Threads { get; init; }

    /// <summary><c>pure</c>: every quantizable tensor gets the file type's default type.</summary>
    public bool Pure { get; init; }

    /// <summary><c>quantize_output_tensor</c> (false = llama-quantize --leave-output-tensor).</summary>
    public bool QuantizeOutputTensor { get; init; } = true;

    public GgmlType OutputTensorType { get; init; } = GgmlType.Count;

    public GgmlType TokenEmbeddingType { get; init; } = GgmlType.Count;

    public bool AllowRequantize { get; init; }

    /// <summary>Per-tensor importance as llama-quantize passes it (already normalized): tensor name → one value per column.</summary>
    public IReadOnlyDictionary<string, float[]>? Imatrix { get; init; }

    /// <summary><c>tt_overrides</c>: regex → type, in order (llama-quantize --tensor-type).</summary>
    public IReadOnlyList<(string Pattern, GgmlType Type)> TensorTypeOverrides { get; init; } = [];
}

/// <summary>llama.cpp's own quantizer (<c>llama_model_quantize</c>), the peer EdgeQuant's quantizers are compared with.</summary>
public static class LlamaQuantizer
{
    /// <summary>
    /// Quantizes <paramref name="input"/> (GGUF) into <paramref name="output"/> with llama.cpp's default tensor-type
    /// policy for <paramref name="fileType"/>. Writes a temporary file beside the output and renames it on success.
    /// </summary>
    public static void Quantize(string input, string output, LlamaFileType fileType, int threads = 0) =>
        Quantize(input, output, fileType, new LlamaQuantizeOptions { Threads = threads });

    public static unsafe void Quantize(string input, string output, LlamaFileType fileType, LlamaQuantizeOptions options)
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
        p.nthread = options.Threads;
        p.pure = options.Pure ? (byte)1 : (byte)0;
        p.quantize_output_tensor = options.QuantizeOutputTensor ? (byte)1 : (byte)0;
        p.output_tensor_type = options.OutputTensorType;
        p.token_embedding_type = options.TokenEmbeddingType;
        p.allow_requantize = options.AllowRequantize ? (byte)1 : (byte)0;

        // Everything handed to the C side lives in unmanaged memory until the call returns.
        var allocations = new List<nint>();
        nint Alloc(int bytes)
        {
            var a = Marshal.AllocHGlobal(bytes);
            allocations.Add(a);
            return a;
        }
        nint Utf8(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s + "\0");
            var a = Alloc(bytes.Length);
            Marshal.Copy(bytes, 0, a, bytes.Length);
            return a;
        }
        try
        {
            if (options.Imatrix is { Count: > 0 } im)
            {
                // A null-name-terminated array of { name, data, size }.
                var entries = (llama_model_imatrix_data*)Alloc((im.Count + 1) * sizeof(llama_model_imatrix_data));
                int i = 0;
                foreach (var (name, values) in im)
                {
                    var data = Alloc(values.Length * sizeof(float));
                    Marshal.Copy(values, 0, data, values.Length);
                    entries[i++] = new llama_model_imatrix_data { name = Utf8(name), data = data, size = (nuint)values.Length };
                }
                entries[i] = default;
                p.imatrix = (nint)entries;
            }
            if (options.TensorTypeOverrides.Count > 0)
            {
                var overrides = (llama_model_tensor_override*)Alloc((options.TensorTypeOverrides.Count + 1) * sizeof(llama_model_tensor_override));
                for (int i = 0; i < options.TensorTypeOverrides.Count; i++)
                    overrides[i] = new llama_model_tensor_override { pattern = Utf8(options.TensorTypeOverrides[i].Pattern), type = options.TensorTypeOverrides[i].Type };
                overrides[options.TensorTypeOverrides.Count] = new llama_model_tensor_override { pattern = 0, type = GgmlType.Count };
                p.tt_overrides = (nint)overrides;
            }
            LlamaLog.ClearHistory();
            uint rc = LlamaNative.llama_model_quantize(Path.GetFullPath(input), tmp, &p);
            if (rc != 0)
                throw new BadInputException($"{input}: llama_model_quantize to {fileType} failed with {rc}{LlamaModel.Reason()}");
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
            foreach (var a in allocations) Marshal.FreeHGlobal(a);
        }
    }
}
