using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using EdgeQuant.Runtimes.LlamaCpp.Native;

namespace EdgeQuant.Runtimes.LlamaCpp;

/// <summary>
/// Routes llama.cpp's and ggml's log output (one callback, installed with <c>llama_log_set</c>, which also sets ggml's)
/// to a managed sink. Quiet by default: with no sink nothing reaches stderr. Warnings and errors are always kept in a
/// short history so a failing native call (which only returns NULL) can say why in its exception.
/// </summary>
public static class LlamaLog
{
    private const int HistoryLength = 16;
    private static readonly Lock Gate = new();
    private static readonly StringBuilder Pending = new();
    private static readonly Queue<string> RecentProblems = new();
    private static GgmlLogLevel _pendingLevel = GgmlLogLevel.Info;

    /// <summary>Receives whole lines (without the newline). Null: drop them. May be called from native worker threads.</summary>
    public static Action<GgmlLogLevel, string>? Sink { get; set; }

    /// <summary>Lines below this level are not handed to <see cref="Sink"/>.</summary>
    public static GgmlLogLevel MinimumLevel { get; set; } = GgmlLogLevel.Debug;

    /// <summary>The most recent warning and error lines (oldest first), for error messages.</summary>
    public static IReadOnlyList<string> RecentWarningsAndErrors()
    {
        lock (Gate) return [.. RecentProblems];
    }

    /// <summary>Forgets the warning/error history, so the next failure reports only its own lines.</summary>
    public static void ClearHistory()
    {
        lock (Gate) RecentProblems.Clear();
    }

    internal static unsafe void Install() =>
        LlamaNative.llama_log_set(&OnNativeLog, 0);

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static unsafe void OnNativeLog(GgmlLogLevel level, byte* text, nint userData)
    {
        // An exception must never unwind into native code: swallow whatever a sink throws.
        try
        {
            var piece = text is null ? "" : Marshal.PtrToStringUTF8((nint)text) ?? "";
            List<(GgmlLogLevel, string)>? lines = null;
            lock (Gate)
            {
                // ggml sends a message in pieces: CONT continues the previous one at its level.
                if (level != GgmlLogLevel.Cont)
                {
                    if (Pending.Length > 0 && level != _pendingLevel) Flush(ref lines);
                    _pendingLevel = level;
                }
                Pending.Append(piece);
                var s = Pending.ToString();
                var nl = s.LastIndexOf('\n');
                if (nl >= 0)
                {
                    foreach (var line in s[..nl].Split('\n')) Emit(_pendingLevel, line, ref lines);
                    Pending.Clear().Append(s[(nl + 1)..]);
                }
            }
            if (lines is null) return;
            var sink = Sink;
            if (sink is null) return;
            foreach (var (l, line) in lines)
                if (l >= MinimumLevel) sink(l, line);
        }
        catch (Exception)
        {
        }
    }

    private static void Flush(ref List<(GgmlLogLevel, string)>? lines)
    {
        Emit(_pendingLevel, Pending.ToString(), ref lines);
        Pending.Clear();
    }

    private static void Emit(GgmlLogLevel level, string line, ref List<(GgmlLogLevel, string)>? lines)
    {
        line = line.TrimEnd('\r');
        if (line.Length == 0) return;
        if (level is GgmlLogLevel.Warn or GgmlLogLevel.Error)
        {
            if (RecentProblems.Count == HistoryLength) RecentProblems.Dequeue();
            RecentProblems.Enqueue(line);
        }
        (lines ??= []).Add((level, line));
    }
}
