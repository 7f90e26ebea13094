using System.Reflection;
using System.Runtime.InteropServices;
using EdgeQuant.Core.Errors;
using EdgeQuant.Core.Tensors;
using EdgeQuant.Models;

namespace EdgeQuant.Export;

/// <summary>Element types an export may store weights as. Null in the options means "keep each tensor's source type".</summary>
public static class ExportTypes
{
    public static IReadOnlyList<TensorType> Supported { get; } = [TensorType.F32, TensorType.F16, TensorType.BF16];

    /// <summary>Parses a <c>--outtype</c> value (f32, f16, bf16; case-insensitive).</summary>
    public static TensorType Parse(string text, string option = "--outtype") => text.ToLowerInvariant() switch
    {
        "f32" => TensorType.F32,
        "f16" => TensorType.F16,
        "bf16" => TensorType.BF16,
        _ => throw new BadInputException($"{option}: '{text}' is not one of f32, f16, bf16"),
    };

    /// <summary>
    /// The type a tensor is written as: the requested one, or with none requested the source's own type when it is
    /// plain (so an export is lossless by default) and F32 for quantized sources.
    /// </summary>
    public static TensorType Choose(ModelTensor t, TensorType? requested) =>
        requested ?? (t.Type is TensorType.F32 or TensorType.F16 or TensorType.BF16 ? t.Type : TensorType.F32);

    /// <summary>
    /// The tensor's canonical-layout bytes as <paramref name="target"/>. Same type: the stored bytes themselves
    /// (bit-exact); otherwise through F32 (dequantized when the source is quantized) and rounded to nearest even.
    /// </summary>
    /// <param name="allowNonFinite">Keep NaN/Inf values; otherwise the first one (also an F16 overflow) is refused as bad input.</param>
    /// <param name="source">Names the model in errors.</param>
    public static ReadOnlyMemory<byte> Convert(ModelTensor t, TensorType target, bool allowNonFinite = false, string? source = null)
    {
        byte[] bytes;
        if (t.Type == target) bytes = t.RawBytes().ToArray();
        else
        {
            var floats = t.ToFloat32();
            if (target == TensorType.F32) bytes = MemoryMarshal.AsBytes(floats.AsSpan()).ToArray();
            else
            {
                bytes = new byte[checked(floats.Length * 2)];
                if (target == TensorType.F16) HalfConversions.F32ToF16(floats, bytes);
                else if (target == TensorType.BF16) HalfConversions.F32ToBF16(floats, bytes);
                else throw new InternalFailureException($"{t.Name}: cannot convert to {target}");
            }
        }
        if (!allowNonFinite && FirstNonFinite(bytes, target) is { } at)
            throw new BadInputException(
                $"{source ?? "model"}: tensor '{t.Name}' ({t.SourceName}) element {at} is NaN or infinite{(t.Type != target ? $" as {TensorTypes.Get(target).Name}" : "")}; refused (pass --allow-nonfinite to export it anyway)");
        return bytes;
    }

    /// <summary>Index of the first NaN/Inf in F32, F16 or BF16 data (exponent bits all ones), or null.</summary>
    public static long? FirstNonFinite(ReadOnlySpan<byte> data, TensorType type)
    {
        switch (type)
        {
            case TensorType.F32:
                var f = MemoryMarshal.Cast<byte, uint>(data);
                for (int i = 0; i < f.Length; i++) if ((f[i] & 0x7F80_0000u) == 0x7F80_0000u) return i;
                return null;
            case TensorType.F16:
            case TensorType.BF16:
                ushort mask = type == TensorType.F16 ? (ushort)0x7C00 : (ushort)0x7F80;
                var h = MemoryMarshal.Cast<byte, ushort>(data);
                for (int i = 0; i < h.Length; i++) if ((h[i] & mask) == mask) return i;
                return null;
            default:
                return null;
        }
    }

    /// <summary>The type most 2-D tensors were written as (what general.file_type and torch_dtype describe).</summary>
    public static TensorType Predominant(IEnumerable<(long[] Shape, TensorType Type)> written) =>
        written.Where(w => w.Shape.Length >= 2).GroupBy(w => w.Type).OrderByDescending(g => g.Count()).ThenBy(g => g.Key)
            .Select(g => g.Key).DefaultIfEmpty(TensorType.F32).First();

    /// <summary>The EdgeQuant version stamped into exported files.</summary>
    public static string ToolVersion { get; } =
        typeof(ExportTypes).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(ExportTypes).Assembly.GetName().Version?.ToString() ?? "0";
}

/// <summary>Checks shared by the exporters: where the output may go.</summary>
public static class ExportPaths
{
    /// <summary>
    /// Refuses an output that is the input (a GGUF source is memory-mapped while it is read, and an HF folder would be
    /// replaced by itself), lies inside an input folder, or already exists without <paramref name="overwrite"/>.
    /// </summary>
    public static void CheckOutput(string inputPath, string outputPath, bool overwrite)
    {
        if (string.IsNullOrWhiteSpace(outputPath)) throw new BadInputException("the output path is empty");
        var input = Normalize(inputPath);
        var output = Normalize(outputPath);
        if (string.Equals(input, output, StringComparison.Ordinal))
            throw new BadInputException($"{outputPath}: the output is the input model; choose another output path");
        if (Directory.Exists(input) && output.StartsWith(input + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new BadInputException($"{outputPath}: the output lies inside the input folder {inputPath}; choose a path outside it");
        if (!overwrite && (File.Exists(output) || Directory.Exists(output)))
            throw new BadInputException($"{outputPath}: already exists (pass --force to replace it)");
    }

    /// <summary>Moves the finished folder into place; an existing output (allowed by --force) is set aside first and removed after.</summary>
    internal static void ReplaceFolder(string temp, string target, bool overwrite)
    {
        string? old = null;
        if (File.Exists(target) || Directory.Exists(target))
        {
            if (!overwrite) throw new BadInputException($"{target}: already exists (pass --force to replace it)");
            old = temp + ".old";
            if (File.Exists(target)) File.Move(target, old);
            else Directory.Move(target, old);
        }
        try
        {
            Directory.Move(temp, target);
        }
        catch
        {
            if (old is not null)
            {
                if (File.Exists(old)) File.Move(old, target);
                else Directory.Move(old, target);
            }
            throw;
        }
        if (old is not null)
        {
            if (File.Exists(old)) File.Delete(old);
            else TryDeleteFolder(old);
        }
    }

    internal static void TryDeleteFolder(string dir)
    {
        try { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static string Normalize(string path)
    {
        var full = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar);
        // Through symlinks too, so that a link to the input is still the input.
        try
        {
            var info = File.Exists(full) ? (FileSystemInfo)new FileInfo(full) : new DirectoryInfo(full);
            if (info.Exists && info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is { } target)
                return target.FullName.TrimEnd(Path.DirectorySeparatorChar);
        }
        catch (IOException) { }
        return full;
    }
}
