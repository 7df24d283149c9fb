"""Evaluate the shipped image models (`studio eval image` does the same): `python scripts/eval_image.py [--quick] [--cards]`."""

import argparse
import json

from studio.tasks.image import evaluate

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer prompts and sizes")
    ap.add_argument("--cards", action="store_true", help="also rewrite the models' MODEL_CARD.md with the measured metrics")
    args = ap.parse_args()
    result = evaluate.run(quick=args.quick, write_cards=args.cards)
    print(json.dumps(result, indent=2))
