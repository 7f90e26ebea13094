using System.Diagnostics;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.OnnxRuntime;
using EdgeQuant.Testing;

namespace EdgeQuant.Export.Tests.Onnx;

/// <summary>Needs ONNX Runtime (make runtimes) and optionally shared data: skipped when missing, failed under CI=true.</summary>
public sealed class OnnxExportFactAttribute : FactAttribute
{
    public OnnxExportFactAttribute(params string[] sharedFiles)
    {
        if (SharedData.IsCi) return;
        if (OrtAvailability.SkipReason is { } reason) Skip = reason;
        else if (sharedFiles.Select(SharedData.PathOf).FirstOrDefault(p => !File.Exists(p)) is { } missing)
            Skip = $"shared test data not found: {missing} (set EDGEQUANT_SHARED_DATA; under CI=true this fails instead)";
    }
}

public sealed class OnnxExportTheoryAttribute : TheoryAttribute
{
    public OnnxExportTheoryAttribute()
    {
        if (!SharedData.IsCi && OrtAvailability.SkipReason is { } reason) Skip = reason;
    }
}

internal static class OrtAvailability
{
    private static readonly Lazy<string?> Reason = new(() =>
    {
        LlamaRuntime.Configure();
        try
        {
            _ = OrtEnvironment.Version;
            return null;
        }
        catch (RuntimeNotFoundException e)
        {
            return $"ONNX Runtime unavailable: {e.Message} (under CI=true this fails instead)";
        }
    });

    public static string? SkipReason => Reason.Value;
}

/// <summary>
/// The independent validator: Debian's python3-onnx (onnx 1.12, tools/install-test-deps.sh) runs
/// <c>onnx.checker.check_model(full_check=True)</c>, which includes strict shape inference. Without it the check
/// is skipped locally (a note on stderr) and fails under CI=true.
/// </summary>
internal static class OnnxChecker
{
    private const string Python = "/usr/bin/python3";

    /// <summary>True when Debian's python3-onnx can be imported.</summary>
    public static bool Available { get; } = Probe();

    private static bool Probe()
    {
        try
        {
            var psi = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add("import onnx.checker");
            using var p = Process.Start(psi)!;
            p.StandardOutput.ReadToEnd();
            p.StandardError.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    public static void Check(string modelPath)
    {
        var psi = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("import sys, onnx\nm = onnx.load(sys.argv[1])\nonnx.checker.check_model(m, full_check=True)\nprint('ok', m.ir_version, [(o.domain, o.version) for o in m.opset_import])");
        psi.ArgumentList.Add(modelPath);
        string stdout, stderr;
        int exit;
        try
        {
            using var p = Process.Start(psi)!;
            stdout = p.StandardOutput.ReadToEnd();
            stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            exit = p.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            if (SharedData.IsCi) Assert.Fail($"{Python} not found ({e.Message}); run tools/install-test-deps.sh");
            return;
        }
        if (exit != 0 && (stderr.Contains("No module named 'onnx'") || stderr.Contains("has no attribute 'load'")))
        {
            if (SharedData.IsCi) Assert.Fail($"python3-onnx is missing; run tools/install-test-deps.sh: {stderr}");
            Console.Error.WriteLine("onnx.checker skipped: python3-onnx is not installed (tools/install-test-deps.sh)");
            return;
        }
        Assert.True(exit == 0, $"onnx.checker rejected {modelPath}:\n{stderr}");
        Assert.StartsWith("ok", stdout);
    }
}
