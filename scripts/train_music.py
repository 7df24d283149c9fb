"""Train the music task (retriever, Theme Transformer, prompt baseline) and export to models/.

    .venv/bin/python scripts/train_music.py --config studio/tasks/music/configs/default.toml
"""

import argparse

from studio.tasks.music.train import main

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="TOML/YAML training config (MusicTrainConfig)")
    main(ap.parse_args().config)
