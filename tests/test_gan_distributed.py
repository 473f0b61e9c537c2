"""Data-parallel training under `torchrun` (2 CPU processes, gloo): the processes stay in lockstep and only
rank 0 writes outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = str(Path(sys.executable).parent / "torchrun")

SCRIPT = """
import sys
from pathlib import Path
import torch
from facegen.config import GanConfig
from facegen.gan.distributed import distributed
from facegen.gan.training_loop import GanTrainer

out = Path(sys.argv[1])
config = GanConfig(attributes=("Male", "Smiling"), z_dim=8, base_channels=4, editor_channels=4, editor_res_blocks=1,
                   batch_size=8, steps=3, sample_every=3, checkpoint_every=3, seed=5)
data = torch.Generator().manual_seed(0)
images = torch.randint(0, 256, (32, 32, 32, 3), dtype=torch.uint8, generator=data)
attributes = torch.randint(0, 2, (32, 2), generator=data).float()
with distributed(torch.device("cpu")) as (rank, device):
    trainer = GanTrainer(config, images, attributes, out / "gan", device)
    batch = trainer.sample_batch()
    trainer.run()
    torch.save({"nets": {k: v.state_dict() for k, v in trainer.nets.items()}, "batch": batch.images,
                "world_size": trainer.world_size}, out / f"rank{rank}.pt")
"""


def test_two_gloo_processes_train_in_lockstep(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [TORCHRUN, "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["batch"].shape[0] == 4  # each process trains on half of gan.batch_size
    assert not torch.equal(ranks[0]["batch"], ranks[1]["batch"])  # ... and on different images
    for name, state in ranks[0]["nets"].items():  # gradients were averaged: identical weights everywhere
        for key, value in state.items():
            if "running_" not in key and "num_batches" not in key:  # BatchNorm statistics are per process
                assert torch.equal(value, ranks[1]["nets"][name][key]), f"{name}.{key}"
    checkpoint = torch.load(tmp_path / "gan" / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 3
    assert all(torch.equal(checkpoint["G"][k], v) for k, v in ranks[0]["nets"]["G"].items())
    assert sorted(p.name for p in (tmp_path / "gan").iterdir() if not p.name.startswith(".")) == [
        "checkpoint.pt",
        "edits_000003.png",
        "grid_000003.png",
        "metrics.csv",
    ]
