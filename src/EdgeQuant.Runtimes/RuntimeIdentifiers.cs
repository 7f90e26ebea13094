using System.Runtime.InteropServices;

namespace EdgeQuant.Runtimes;

/// <summary>The runtime identifiers (RIDs) EdgeQuant ships native libraries for, named as .NET names them.</summary>
public static class RuntimeIdentifiers
{
    public const string LinuxX64 = "linux-x64";
    public const string LinuxArm64 = "linux-arm64";

    /// <summary>Every RID <c>tools/fetch-runtimes.sh</c> can lay out.</summary>
    public static IReadOnlyList<string> Supported { get; } = [LinuxX64, LinuxArm64];

    /// <summary>The RID of this process, or null when EdgeQuant has no native runtimes for it.</summary>
    public static string? Current => Detect(OperatingSystem.IsLinux(), RuntimeInformation.ProcessArchitecture);

    /// <summary>The RID for an OS/architecture pair, or null when unsupported (pure function, for tests).</summary>
    public static string? Detect(bool isLinux, Architecture architecture) => (isLinux, architecture) switch
    {
        (true, Architecture.X64) => LinuxX64,
        (true, Architecture.Arm64) => LinuxArm64,
        _ => null,
    };

    /// <summary>A human description of this process's platform, for error messages.</summary>
    public static string DescribeCurrent() => $"{RuntimeInformation.OSDescription.Trim()} {RuntimeInformation.ProcessArchitecture}";
}
