namespace EdgeQuant.Cli.Commands.Runtimes;

/// <summary>What <c>runtimes --json</c> prints (snake_case on the wire).</summary>
public sealed record RuntimesReport(string? Rid, IReadOnlyList<RuntimeEntry> Runtimes);

/// <summary>One runtime: where it was loaded from and what it reports, or why it could not be loaded.</summary>
/// <param name="Source">How the library was found: environment_variable, bundled or system.</param>
/// <param name="CpuVariant">llama.cpp: the <c>libggml-cpu-&lt;variant&gt;.so</c> ggml chose for this CPU.</param>
/// <param name="ErrorCode">The numbered error (EQ-RT-…) when the runtime is missing.</param>
public sealed record RuntimeEntry(
    string Name,
    bool Available,
    string? Version = null,
    string? Path = null,
    string? Source = null,
    string? CpuVariant = null,
    string? CpuVariantPath = null,
    IReadOnlyList<string>? Devices = null,
    string? SystemInfo = null,
    string? ErrorCode = null,
    string? Error = null);
