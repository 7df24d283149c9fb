"""Train the music task (retriever, Theme Transformer, prompt baseline) and export to models/.

    .venv/bin/python scripts/train_music.py --config studio/tasks/music/configs/default.toml
    # or in parts, the two models side by side:
    ... --parts retriever ; ... --parts theme & ... --parts baseline ; ... --parts export
"""

import argparse

from studio.tasks.music.train import PARTS, main

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="TOML/YAML training config (MusicTrainConfig)")
    ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="which stages to run")
    args = ap.parse_args()
    main(args.config, tuple(args.parts))
