using EdgeQuant.Cli.Framework;
using EdgeQuant.Core.Errors;
using EdgeQuant.Runtimes;
using EdgeQuant.Runtimes.LlamaCpp;
using EdgeQuant.Runtimes.OnnxRuntime;
using Spectre.Console;

namespace EdgeQuant.Cli.Commands.Runtimes;

/// <summary>
/// Loads each native runtime through the one resolution policy and reports it. Exit 0 when every runtime loads; 1
/// (the exit code of a missing runtime) otherwise, after listing them all with the numbered reason.
/// </summary>
public sealed class RuntimesCommand(CliContext context, bool json) : ICliCommand
{
    public Task<int> ExecuteAsync(CancellationToken cancellationToken)
    {
        var entries = new List<RuntimeEntry> { Probe("onnxruntime", OnnxRuntime), Probe("llama.cpp", LlamaCpp) };
        var report = new RuntimesReport(RuntimeIdentifiers.Current, entries);
        if (json) JsonOutput.Write(context.Console.Out, report);
        else Render(context.CreateOutputRenderer(), report);
        return Task.FromResult(entries.All(e => e.Available) ? ExitCodes.Ok : ExitCodes.InternalFailure);
    }

    private static RuntimeEntry OnnxRuntime()
    {
        var lib = OrtEnvironment.Library;
        return new RuntimeEntry("onnxruntime", true, OrtEnvironment.Version, lib.Path, SourceName(lib.Source));
    }

    private static RuntimeEntry LlamaCpp()
    {
        var info = LlamaLibrary.EnsureInitialized();
        return new RuntimeEntry("llama.cpp", true, $"{info.LlamaVersion} (ggml {info.GgmlVersion}, {info.GgmlCommit})", info.LlamaPath, SourceName(info.Source),
            info.CpuVariant, info.CpuVariantPath, info.Devices, info.SystemInfo);
    }

    private static RuntimeEntry Probe(string name, Func<RuntimeEntry> probe)
    {
        try
        {
            return probe();
        }
        catch (RuntimeNotFoundException e)
        {
            return new RuntimeEntry(name, false, ErrorCode: e.Code, Error: e.Message);
        }
    }

    private static string SourceName(NativeLibrarySource s) => JsonOutput.Serialize(s).Trim('"');

    private static void Render(IAnsiConsole console, RuntimesReport r)
    {
        var table = new Table().AddColumn("runtime").AddColumn("version").AddColumn("found").AddColumn("path").AddColumn("details");
        foreach (var e in r.Runtimes)
        {
            if (!e.Available)
            {
                table.AddRow(new Text(e.Name), new Text("-"), new Text("missing"), new Text("-"), new Text(e.Error ?? ""));
                continue;
            }
            var details = e.CpuVariant is { } v ? $"cpu variant {v}" : "";
            table.AddRow(new Text(e.Name), new Text(e.Version ?? "?"), new Text(e.Source ?? ""), new Text(e.Path ?? ""), new Text(details));
        }
        console.Write(table);
        console.WriteLine($"rid: {r.Rid ?? "unsupported"}");
    }
}
