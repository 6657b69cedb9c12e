"""The standalone runtime, the command line and benchmarks."""
