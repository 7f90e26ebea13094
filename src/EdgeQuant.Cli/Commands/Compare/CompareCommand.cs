using System.Globalization;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Core.Errors;
using EdgeQuant.Verification.Compare;
using EdgeQuant.Verification.Reports;

namespace EdgeQuant.Cli.Commands.Compare;

/// <summary>
/// Reads two verification reports, compares every figure they share with <see cref="ReportComparer"/>, prints the
/// Markdown (or the comparison as JSON) and exits 3 when any figure regressed beyond its tolerance.
/// </summary>
public sealed class CompareCommand(CliContext context, CompareOptions options) : ICliCommand
{
    public async Task<int> ExecuteAsync(CancellationToken cancellationToken)
    {
        if (!(options.Sigmas >= 0) || !double.IsFinite(options.Sigmas) || options.Sigmas > 100)
            throw new BadInputException($"--sigmas: {options.Sigmas.ToString(CultureInfo.InvariantCulture)} is outside 0..100");
        var tolerances = CompareTolerances.Parse(options.Tolerances);
        var baseline = VerificationReportJson.ReadFile(options.BaselinePath);
        var current = VerificationReportJson.ReadFile(options.CurrentPath);
        var comparison = ReportComparer.Compare(baseline, current, tolerances, options.Sigmas, options.BaselinePath, options.CurrentPath);
        var markdown = CompareMarkdown.Render(comparison);

        if (options.OutputPath is { } outPath)
        {
            var full = Path.GetFullPath(outPath);
            if (Directory.Exists(full)) throw new BadInputException($"{outPath}: is a folder (--output takes a file name)");
            var dir = Path.GetDirectoryName(full)!;
            if (!Directory.Exists(dir)) throw new BadInputException($"{outPath}: folder {dir} does not exist (--output)");
            var temp = full + ".tmp-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
            try
            {
                await File.WriteAllTextAsync(temp, markdown, cancellationToken);
                File.Move(temp, full, overwrite: true);
            }
            finally
            {
                if (File.Exists(temp)) File.Delete(temp);
            }
        }

        if (options.Json) JsonOutput.Write(context.Console.Out, comparison);
        else
        {
            await context.Console.Out.WriteAsync(markdown);
            await context.Console.Out.FlushAsync(cancellationToken);
        }
        if (comparison.Regressed)
        {
            var names = comparison.Metrics.Where(m => m.Verdict == ChangeVerdict.Regression).Select(m => m.Metric);
            await context.Console.Error.WriteLineAsync($"edgequant: regression: {string.Join(", ", names)}");
            return ExitCodes.GateFailed;
        }
        return ExitCodes.Ok;
    }
}
