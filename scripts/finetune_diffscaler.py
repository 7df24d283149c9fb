"""Fine-tune a Diffscaler affiner: `python scripts/finetune_diffscaler.py --config datasets/diffscaler/outline.toml`.

The frozen base is the image task's DiT (`models/image-dit`); the adapter goes to
`adapters/diffscaler-<dataset>/` (or `adapter.out`). Same as `studio train diffscaler CONFIG`.
"""

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="TOML/YAML DiffscalerTrainConfig (see datasets/diffscaler/*.toml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (dotted), value parsed as JSON when possible")
    args = p.parse_args(argv)
    from studio.tasks.diffscaler.train import main as finetune
    from studio.train import parse_overrides

    print(json.dumps(finetune(args.config, parse_overrides(args.set)), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
