"""Export, bundles, the standalone runtime, the command line and benchmarks."""
