using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Core.Errors;

namespace EdgeQuant.Cli.Tests.Framework;

/// <summary>The real edgequant.dll in a child process: exit codes and stderr as a shell script sees them.</summary>
public class EndToEndTests
{
    [Fact]
    public void Bad_path_exits_2_with_one_line_naming_the_file()
    {
        var path = Path.Combine(Path.GetTempPath(), $"no-such-model-{Guid.NewGuid():N}.gguf");
        var r = CliProcess.Run("inspect", path);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        var line = Assert.Single(r.ErrorLines);
        Assert.StartsWith("edgequant: error: ", line);
        Assert.Contains(path, line);
        Assert.Equal("", r.StdOut);
    }

    [Fact]
    public void Unknown_option_exits_2_with_one_line()
    {
        var r = CliProcess.Run("inspect", "x.gguf", "--no-such-option");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Contains("--no-such-option", Assert.Single(r.ErrorLines));
        Assert.Equal("", r.StdOut);
    }

    [Fact]
    public void Help_from_the_process_is_the_approved_help()
    {
        var r = CliProcess.Run("--help");
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        Assert.Equal("", r.StdErr);
        Approvals.Verify("help.root", r.StdOut);
    }

    [Fact]
    public void A_folder_without_config_json_exits_2()
    {
        using var dir = new Testing.TempDir();
        var r = CliProcess.Run("inspect", dir.Path);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Contains(dir.Path, Assert.Single(r.ErrorLines));
    }

    [Fact]
    public void Version_prints_the_cli_assembly_version()
    {
        // Only meaningful out of process: System.CommandLine reads the entry assembly, which in-process is the test host.
        var r = CliProcess.Run("--version");
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        var expected = typeof(EdgeQuant.Cli.Framework.CliApp).Assembly.GetName().Version!.ToString(3);
        Assert.StartsWith(expected, r.StdOut.Trim());
    }
}
