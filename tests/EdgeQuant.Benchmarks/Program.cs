using EdgeQuant.Benchmarks;
using EdgeQuant.Benchmarks.Kernels;

// `dotnet run --project tests/EdgeQuant.Benchmarks -c Release -- [filter ...]` runs every suite whose name contains
// one of the filters (all suites when none is given). One line per suite:
var suites = new BenchmarkRegistry();
suites.Add("kernels.gemm", KernelBenchmarks.Gemm);
suites.Add("kernels.gemv", KernelBenchmarks.Gemv);
suites.Add("kernels.elementwise", KernelBenchmarks.Elementwise);
suites.Add("engine.prefill", EdgeQuant.Benchmarks.Engine.EngineBenchmarks.Prefill);
suites.Add("engine.decode", EdgeQuant.Benchmarks.Engine.EngineBenchmarks.Decode);
suites.Add("pruning.structured.prefill", EdgeQuant.Benchmarks.Engine.StructuredPruningBenchmarks.Prefill);
suites.Add("runtimes.llamacpp.decode", EdgeQuant.Benchmarks.Runtimes.LlamaCppBenchmarks.DecodeOverhead);
suites.Add("runtimes.onnxruntime.run", EdgeQuant.Benchmarks.Runtimes.OrtBenchmarks.RunOverhead);
suites.Add("tokenizers.encode", EdgeQuant.Benchmarks.Tokenizers.TokenizerBenchmarks.Run);
suites.Add("quantize.legacy", EdgeQuant.Benchmarks.Quantization.QuantizeBenchmarks.Run);
suites.Add("quantize.kquants.3", EdgeQuant.Benchmarks.Quantization.Q3KQuantizeBenchmarks.Run);
suites.Add("quantize.kquants.245", EdgeQuant.Benchmarks.Quantization.KQuant245Benchmarks.Run);
suites.Add("quantize.model", EdgeQuant.Benchmarks.Quantization.ModelQuantizeBenchmarks.Run);
suites.Add("onnx.quant", EdgeQuant.Benchmarks.Runtimes.OnnxQuantBenchmarks.Run);
return suites.Run(args);
