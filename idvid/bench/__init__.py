"""Benchmarks: each prints ratios measured side by side in one run (this machine is noisy)."""
