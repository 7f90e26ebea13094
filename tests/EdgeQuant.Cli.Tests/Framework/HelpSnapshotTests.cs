using EdgeQuant.Cli.Framework;
using EdgeQuant.Cli.Tests.Infrastructure;

namespace EdgeQuant.Cli.Tests.Framework;

/// <summary><c>--help</c> of the root and of each command, against approved files in Approved/.</summary>
public class HelpSnapshotTests
{
    [Fact]
    public void Root_help_matches_the_approved_file()
    {
        var r = CliRunner.Run("--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("", r.StdErr);
        Approvals.Verify("help.root", r.StdOut);
    }

    [Fact]
    public void Inspect_help_matches_the_approved_file()
    {
        var r = CliRunner.Run("inspect", "--help");
        Assert.Equal(0, r.ExitCode);
        Approvals.Verify("help.inspect", r.StdOut);
    }

    [Fact]
    public void Every_catalogued_command_has_a_description_and_described_options()
    {
        var root = CliApp.BuildRoot(new CliContext(new TestConsole()));
        Assert.NotEmpty(root.Subcommands);
        Assert.Equal(root.Subcommands.Count, root.Subcommands.Select(c => c.Name).Distinct().Count());
        foreach (var command in Descendants(root))
        {
            Assert.False(string.IsNullOrWhiteSpace(command.Description), $"{command.Name} has no description");
            foreach (var option in command.Options)
                Assert.False(string.IsNullOrWhiteSpace(option.Description), $"{command.Name} {option.Name} has no description");
            foreach (var argument in command.Arguments)
                Assert.False(string.IsNullOrWhiteSpace(argument.Description), $"{command.Name} {argument.Name} has no description");
        }
    }

    private static IEnumerable<System.CommandLine.Command> Descendants(System.CommandLine.Command command) =>
        command.Subcommands.SelectMany(c => Descendants(c).Prepend(c));
}
