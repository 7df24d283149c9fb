"""Train the VFX base video DiT on generic motion (or compare attention layouts).

    python scripts/train_vfx.py --config datasets/vfx/configs/base.toml
    python scripts/train_vfx.py --compare full=datasets/vfx/configs/base_full.toml \
        factorised=datasets/vfx/configs/base_factorised.toml --at-step 100 --out models/vfx-base/layouts.json
    python scripts/train_vfx.py --classifier models/vfx-base/effect_classifier.safetensors
    python scripts/train_vfx.py --effect-guide models/vfx-effect-guide
    python scripts/train_vfx.py --card models/vfx-base
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from studio.tasks.vfx.train import compare_layouts, main, write_base_card

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="TOML/YAML training config (see datasets/vfx/configs/base.toml)")
    ap.add_argument("--compare", nargs="+", metavar="LAYOUT=CONFIG", help="held-out loss of bases trained by these configs")
    ap.add_argument("--at-step", type=int, default=100, help="the checkpoint step --compare reads")
    ap.add_argument("--out", default="layouts.json", help="where --compare writes its JSON")
    ap.add_argument("--classifier", metavar="FILE", help="train the effect classifier used by the evaluation")
    ap.add_argument("--effect-guide", metavar="MODEL_DIR",
                    help="train the noise-aware effect classifier for --effect-guidance (and write its card)")
    ap.add_argument("--card", metavar="MODEL_DIR", help="write MODEL_CARD.md from the records beside the weights")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1 is fastest when other processes share the cores)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare:
        print(compare_layouts(dict(a.split("=", 1) for a in args.compare), args.at_step, Path(args.out)))
    elif args.classifier:
        import json

        from studio.tasks.vfx.classifier import train_classifier

        record = train_classifier(Path(args.classifier))
        Path(args.classifier).with_suffix(".json").write_text(json.dumps(record, indent=2))
        print(record)
    elif args.effect_guide:
        from studio.tasks.vfx.effect_guide import card, train_effect_guide

        print(train_effect_guide(Path(args.effect_guide)))
        (Path(args.effect_guide) / "MODEL_CARD.md").write_text(card(Path(args.effect_guide)))
    elif args.card:
        print(write_base_card(Path(args.card)).read_text())
    elif args.config:
        main(args.config)
    else:
        ap.error("give --config or --compare-layouts")
