"""Evaluate the shipped music models and write docs/benchmarks/music.md (same as `studio eval music`).

    .venv/bin/python scripts/eval_music.py [--quick] [--json]
"""

import argparse
import json

from studio.tasks.music.evaluate import run

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = run(quick=args.quick)
    keys = ("theme_recurrence_rate", "baseline_theme_recurrence_rate", "retrieval_f1_planted", "kv_cache_speedup_1024")
    print(json.dumps(res if args.json else {k: res[k] for k in keys}, indent=1, default=str))
