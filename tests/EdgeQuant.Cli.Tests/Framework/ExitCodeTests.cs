using EdgeQuant.Cli.Tests.Infrastructure;
using EdgeQuant.Core.Errors;
using EdgeQuant.Models;

namespace EdgeQuant.Cli.Tests.Framework;

/// <summary>How each way a run can end maps to an exit code and stderr, in-process.</summary>
public class ExitCodeTests
{
    [Fact]
    public void Unknown_option_is_a_usage_error_with_one_line_naming_it()
    {
        var r = CliRunner.Run("inspect", "model.gguf", "--bogus");
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        var line = Assert.Single(r.ErrorLines);
        Assert.StartsWith("edgequant: error: ", line);
        Assert.Contains("--bogus", line);
        Assert.Contains("edgequant inspect --help", line);
        Assert.Equal("", r.StdOut);
    }

    [Fact]
    public void Missing_argument_and_missing_command_are_usage_errors()
    {
        var noModel = CliRunner.Run("inspect");
        Assert.Equal(ExitCodes.BadInput, noModel.ExitCode);
        Assert.Contains("inspect", Assert.Single(noModel.ErrorLines));

        var noCommand = CliRunner.Run();
        Assert.Equal(ExitCodes.BadInput, noCommand.ExitCode);
        Assert.Contains("edgequant --help", Assert.Single(noCommand.ErrorLines));

        var unknownCommand = CliRunner.Run("frobnicate");
        Assert.Equal(ExitCodes.BadInput, unknownCommand.ExitCode);
        Assert.Contains("frobnicate", Assert.Single(unknownCommand.ErrorLines));
    }

    [Fact]
    public void Missing_model_path_is_bad_input_naming_the_path()
    {
        var path = Path.Combine(Path.GetTempPath(), $"no-such-model-{Guid.NewGuid():N}.gguf");
        var r = CliRunner.Run("inspect", path);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        var line = Assert.Single(r.ErrorLines);
        Assert.StartsWith("edgequant: error: ", line);
        Assert.Contains(path, line);
        Assert.Equal("", r.StdOut);
    }

    [Fact]
    public void Missing_tokenizer_path_is_bad_input_naming_the_path()
    {
        var r = CliRunner.Run(["inspect", "m.bin", "--tokenizer", "no-such-tok.bin"], TestModels.Loader(() => TestModels.Tiny()));
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Contains("no-such-tok.bin", Assert.Single(r.ErrorLines));
    }

    [Fact]
    public void File_format_errors_exit_2_with_their_message_on_one_line()
    {
        var r = CliRunner.Run(["inspect", "broken.gguf"],
            (path, _) => throw new FileFormatException(path, "tensor_count", 16, "count 9999999999 exceeds the file"));
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Equal("edgequant: error: broken.gguf: tensor_count at byte offset 16: count 9999999999 exceeds the file", Assert.Single(r.ErrorLines));
    }

    [Fact]
    public void Internal_failures_exit_1_with_one_line_and_no_stack_unless_asked()
    {
        Func<string, string?, Model> boom = (_, _) => throw new InvalidOperationException("invariant broke\nsecond line");

        var quiet = CliRunner.Run(["inspect", "m.gguf"], boom);
        Assert.Equal(ExitCodes.InternalFailure, quiet.ExitCode);
        var line = Assert.Single(quiet.ErrorLines);
        Assert.Contains("InvalidOperationException", line);
        Assert.Contains("invariant broke second line", line);

        var verbose = CliRunner.Run(["inspect", "m.gguf", "--verbose"], boom);
        Assert.Equal(ExitCodes.InternalFailure, verbose.ExitCode);
        Assert.Contains(verbose.ErrorLines, l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal));

        var debugEnv = CliRunner.Run(["inspect", "m.gguf"], boom, new Dictionary<string, string> { ["EDGEQUANT_DEBUG"] = "1" });
        Assert.Equal(ExitCodes.InternalFailure, debugEnv.ExitCode);
        Assert.True(debugEnv.ErrorLines.Length > 1, debugEnv.ToString());
    }

    [Fact]
    public void Internal_failure_exception_type_exits_1_without_the_generic_prefix()
    {
        var r = CliRunner.Run(["inspect", "m.gguf"], (_, _) => throw new InternalFailureException("libllama returned -3"));
        Assert.Equal(ExitCodes.InternalFailure, r.ExitCode);
        Assert.Equal("edgequant: error: libllama returned -3", Assert.Single(r.ErrorLines));
    }

    [Fact]
    public void Cancellation_during_a_command_exits_130_with_a_clean_message_and_no_report()
    {
        using var cts = new CancellationTokenSource();
        var r = CliRunner.Run(["inspect", "m.gguf", "--stats"], (_, _) =>
        {
            cts.Cancel(); // as if Ctrl-C arrived while the model was loading
            return TestModels.Tiny();
        }, cancellationToken: cts.Token);
        Assert.Equal(ExitCodes.Interrupted, r.ExitCode);
        var line = Assert.Single(r.ErrorLines);
        Assert.StartsWith("edgequant: error: interrupted", line);
        Assert.Equal("", r.StdOut);
    }
}
