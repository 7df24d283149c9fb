"""Evaluate Diffscaler (affiner vs full fine-tune vs LoRA vs label embeddings; mixed-batch serving).

`python scripts/eval_diffscaler.py [--quick] [--json]` — the same as `studio eval diffscaler`;
writes docs/benchmarks/diffscaler.md.
"""

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from studio.tasks.diffscaler.evaluate import run

    res = run(quick=args.quick)
    keys = ("fd_ratio_vs_full_ft", "param_share", "mixed_batch_throughput_ratio", "mixed_batch_max_abs_diff")
    print(json.dumps(res if args.json else {k: res[k] for k in keys}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
