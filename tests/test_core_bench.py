"""The benchmark's measuring helpers (not timings): memory accounting and scaling exponents."""

import torch

from studio.bench.core import _loglog_slope, paired, peak_memory_mib


def test_peak_memory_sees_a_temporary_allocation():
    def work():
        a = torch.ones(4 * 2**20 // 4)  # 4 MiB float32
        b = a * 2  # another 4 MiB while a is alive
        return float(b[0])

    peak = peak_memory_mib(work)
    assert 7.9 < peak < 12


def test_loglog_slope_recovers_exponents():
    rows = [{"tokens": n, "lin": 3.0 * n, "quad": 0.5 * n**2} for n in (256, 1024, 4096, 16384)]
    assert _loglog_slope(rows, "lin") == 1.0
    assert _loglog_slope(rows, "quad") == 2.0


def test_paired_reports_ratio_of_medians():
    out = paired(lambda: sum(range(20000)), lambda: sum(range(20000)), pairs=3)
    assert set(out) == {"ours_ms", "theirs_ms", "ratio", "pairs"} and out["ratio"] > 0
