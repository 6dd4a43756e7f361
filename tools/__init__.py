"""Operator and developer tools: vector generator, benchmarks."""
