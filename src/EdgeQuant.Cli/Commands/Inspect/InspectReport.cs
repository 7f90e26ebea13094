using System.Text.Json.Serialization;
using EdgeQuant.Cli.Framework;
using EdgeQuant.Models;

namespace EdgeQuant.Cli.Commands.Inspect;

/// <summary>What <c>inspect --json</c> prints (snake_case on the wire).</summary>
public sealed record InspectReport(
    string Path,
    ModelFormat Format,
    Architecture Architecture,
    string SourceArchitecture,
    HyperparametersReport Hyperparameters,
    long ParameterCount, // unique stored parameters: aliases (tensors sharing bytes) count once
    long TensorBytes,
    int TensorCount,
    IReadOnlyList<DtypeReport> BytesPerDtype,
    TokenizerReport? Tokenizer,
    IReadOnlyList<TensorReport> Tensors);

public sealed record HyperparametersReport(
    int VocabSize,
    int EmbeddingLength,
    int BlockCount,
    int HeadCount,
    int HeadCountKv,
    int HeadDim,
    int FeedForwardLength,
    int ContextLength,
    float RopeTheta,
    float NormEpsilon,
    bool TiedEmbeddings,
    bool AttentionBias,
    // Per-layer widths of a structurally pruned model (head_count etc. then hold the largest); absent when uniform.
    IReadOnlyList<int>? LayerHeadCounts = null,
    IReadOnlyList<int>? LayerHeadCountsKv = null,
    IReadOnlyList<int>? LayerFeedForwardLengths = null)
{
    public static HyperparametersReport From(ModelConfig c) => new(
        c.VocabSize, c.EmbeddingLength, c.BlockCount, c.HeadCount, c.HeadCountKv, c.HeadDim, c.FeedForwardLength,
        c.ContextLength, c.RopeTheta, c.NormEpsilon, c.TiedEmbeddings, c.AttentionBias,
        c.HasPerLayerWidths ? Enumerable.Range(0, c.BlockCount).Select(c.HeadsIn).ToArray() : null,
        c.HasPerLayerWidths ? Enumerable.Range(0, c.BlockCount).Select(c.KvHeadsIn).ToArray() : null,
        c.HasPerLayerWidths ? Enumerable.Range(0, c.BlockCount).Select(c.FeedForwardIn).ToArray() : null);
}

/// <summary>Storage taken by one dtype over all tensors.</summary>
public sealed record DtypeReport(string Dtype, int TensorCount, long Elements, long Bytes);

public sealed record TokenizerReport(
    string Kind,
    string? Pre,
    int Size,
    int? MergeCount,
    int? BosId,
    int? EosId,
    int? UnknownId,
    string SourcePath);

/// <summary>
/// One tensor: canonical (GGUF-spelled) name, its name in the file, canonical shape (outermost first), and the tensor
/// whose stored bytes it shares, if any (then it is not counted in parameter_count / tensor_bytes).
/// </summary>
public sealed record TensorReport(
    string Name,
    string SourceName,
    [property: JsonConverter(typeof(CompactInt64ListConverter))] IReadOnlyList<long> Shape,
    string Dtype,
    long Elements,
    long Bytes,
    TensorStatistics? Stats,
    string? StatsError,
    string? AliasOf);

/// <summary>
/// Over all elements, as F32. <see cref="Std"/> is the population standard deviation (numpy's default, ddof=0);
/// <see cref="Sparsity"/> is the fraction of elements exactly zero; NaN anywhere makes min/max/mean/std NaN, and
/// <see cref="NonFinite"/> counts NaN and ±Infinity.
/// </summary>
public sealed record TensorStatistics(float Min, float Max, double Mean, double Std, double Sparsity, long NonFinite);
