"""Run the core benchmark and print its JSON: ``python scripts/bench_core.py [--quick]``.

Same as ``studio bench core [--quick] --json``; writes docs/benchmarks/core.md.
"""

import argparse
import json

from studio.bench.core import run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer repeats")
    args = parser.parse_args()
    result = run(quick=args.quick)
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("_rows")}, indent=2))
