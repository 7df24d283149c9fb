"""Benchmarks (speed, memory), not tests: ``studio/bench/<name>.py: run(quick=False) -> dict`` is
called by ``studio bench <name> [--quick] [--json]`` and writes ``docs/benchmarks/<name>.md``."""
