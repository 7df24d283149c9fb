"""Train an image model stage from a config: `python scripts/train_image.py --config datasets/image/teacher.toml`."""

import argparse
import json

from studio.tasks.image.train import main
from studio.train import parse_overrides

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", required=True, help="TOML/YAML ImageTrainConfig (see datasets/image/*.toml)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key (dotted), value parsed as JSON when possible")
    args = ap.parse_args()
    overrides = parse_overrides(args.set)
    print(json.dumps(main(args.config, overrides), indent=2))
