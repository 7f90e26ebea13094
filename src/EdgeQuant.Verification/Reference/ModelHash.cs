using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Verification.Reference;

/// <summary>
/// The hashes a reference file records, so a report can say which model and which text it was measured against.
/// Unlike the export's source hash (weights only), these identify the artifact as shipped: a file's bytes, or a
/// folder's files.
/// </summary>
public static class ModelHash
{
    /// <summary>
    /// SHA-256 of a model file's bytes; for a folder (HF checkpoint), of every regular file under it in ordinal order
    /// of the relative path ('/'-separated), each as: path UTF-8, a 0 byte, its length as u64 LE, its bytes.
    /// </summary>
    public static byte[] Compute(string path, CancellationToken cancellationToken = default)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        if (File.Exists(path))
        {
            Feed(sha, path, buffer, cancellationToken);
            return sha.GetHashAndReset();
        }
        if (!Directory.Exists(path)) throw new BadInputException($"{path}: no such model file or folder");
        var root = Path.GetFullPath(path);
        var files = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Select(f => (Full: f, Relative: Path.GetRelativePath(root, f).Replace('\\', '/')))
            .OrderBy(f => f.Relative, StringComparer.Ordinal);
        Span<byte> length = stackalloc byte[8];
        foreach (var (full, relative) in files)
        {
            sha.AppendData(Encoding.UTF8.GetBytes(relative));
            sha.AppendData([0]);
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)new FileInfo(full).Length);
            sha.AppendData(length);
            Feed(sha, full, buffer, cancellationToken);
        }
        return sha.GetHashAndReset();
    }

    /// <summary>SHA-256 of the text's UTF-8 bytes (the text as tokenized: after llama-perplexity's trailing-newline trim).</summary>
    public static byte[] OfText(string text) => SHA256.HashData(Encoding.UTF8.GetBytes(text));

    /// <summary>Bytes on disk: a file's length, or the sum over a folder's files.</summary>
    public static long SizeOnDisk(string path)
    {
        if (File.Exists(path)) return new FileInfo(path).Length;
        if (Directory.Exists(path)) return Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        return 0;
    }

    private static void Feed(IncrementalHash sha, string file, byte[] buffer, CancellationToken cancellationToken)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        int n;
        while ((n = stream.Read(buffer)) > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            sha.AppendData(buffer, 0, n);
        }
    }
}
