"""Evaluate the shipped image models (`studio eval image` does the same): `python scripts/eval_image.py [--quick] [--cards]`."""

import argparse
import json

from studio.tasks.image import evaluate

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer prompts and sizes")
    ap.add_argument("--cards", action="store_true", help="also rewrite the models' MODEL_CARD.md with the measured metrics")
    ap.add_argument("--curve", choices=sorted(evaluate.RUNS), help="only compute one training run's FD curve")
    args = ap.parse_args()
    if args.curve:
        print(json.dumps(evaluate.curve_for(args.curve)))
        raise SystemExit(0)
    result = evaluate.run(quick=args.quick, write_cards=args.cards)
    print(json.dumps(result, indent=2))
