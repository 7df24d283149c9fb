"""`accelerate launch --multi_gpu --num_processes 2` really runs two CPU processes (gloo) in sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "accelerate_smoke.py"


def _run(cmd: list[str], out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd + [str(SCRIPT), "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_two_process_launch_on_cpu(tmp_path):
    accelerate = Path(sys.executable).with_name("accelerate")
    _run([str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"], tmp_path / "ddp")
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" for r in ranks)
    seen0, seen1 = set(ranks[0]["seen"]), set(ranks[1]["seen"])
    assert seen0 and seen1 and not seen0 & seen1  # each rank trained on its own half of every batch
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]  # DDP kept them in sync

    # the same global batch in one process: same data, same weights up to float reduction order
    _run([sys.executable], tmp_path / "single")
    single = json.loads((tmp_path / "single" / "rank0.json").read_text())
    assert single["world_size"] == 1
    assert sorted(single["seen"]) == sorted(seen0 | seen1)
    for key, value in single["weights"].items():
        assert torch.allclose(torch.tensor(value), torch.tensor(ranks[0]["weights"][key]), atol=1e-5), key
    assert (tmp_path / "ddp" / "checkpoints" / "step_00000006").is_dir()
