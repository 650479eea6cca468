"""Run under torchrun: a few Engine steps on 2 gloo processes, checking after each step that replicas agree."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import timm
import torch
import torch.distributed as dist

from surgery.data import build_loaders
from surgery.recipe import FitStage, SyntheticData
from surgery.train import Engine, init_distributed
from surgery.train.metrics import MetricsLog
from surgery.train.objectives import ce_objective


class ReplicaCheck(MetricsLog):
    """After every optimizer step, gather a digest of every rank's parameters."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__(None)
        self.model, self.digests = model, []

    def write(self, record: dict[str, object]) -> None:
        if record["kind"] != "step":
            return
        mine = torch.cat([p.detach().flatten() for p in self.model.parameters()])
        everyone = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(everyone, mine)
        self.digests.append([bool(torch.equal(everyone[0], other)) for other in everyone])


def main(out: Path) -> None:
    ctx = init_distributed("cpu")
    torch.manual_seed(ctx.rank)  # different initial weights: DDP must broadcast rank 0's
    model = timm.create_model("vit_tiny_patch16_224", img_size=8, patch_size=2, in_chans=1, num_classes=4, embed_dim=16, depth=1, num_heads=2)
    stage = FitStage(epochs=1, lr=1e-2, warmup_epochs=0, batch_size=16)
    loaders = build_loaders(SyntheticData(num_samples=96, num_classes=4), (1, 8, 8), 16, world_size=ctx.world_size, rank=ctx.rank)
    check = ReplicaCheck(model)
    engine = Engine(
        model, list(model.named_parameters()), stage, loaders, ctx, label="ddp", stage_index=0,
        objective=ce_objective(stage), evaluate=lambda m: {}, save=lambda *a: out, log=check,
    )
    engine.run()
    (out / f"rank{ctx.rank}.json").write_text(json.dumps({"world": ctx.world_size, "digests": check.digests}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
