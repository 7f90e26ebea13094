// Placeholder until benchmarks land.
return 0;
