"""`python tests/ddp_script.py EXPERIMENT key=value...`: one `train()` under DDP that also saves every process's
teacher (and class prior), the names of its first training batch and the size of its validation shard as
`teacher_rank<R>.pt` in the run directory, for tests/test_ddp.py to compare."""

import sys
from pathlib import Path

import lightning as L
import torch

from panoptic_st import training
from panoptic_st.config import load_config


class SaveTeacherPerRank(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out = out
        self.first_batch: list[str] = []

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: dict, batch_idx: int) -> None:
        if not self.first_batch:
            parts = [batch[k] for k in ("source", "target") if k in batch] or [batch]
            self.first_batch = [name for part in parts for name in part["meta"]["name"]]

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        state = {f"teacher.{k}": v.clone() for k, v in module.teacher.state_dict().items()}
        if getattr(module, "prior", None) is not None:
            state.update({f"prior.{k}": v.clone() for k, v in module.prior.state_dict().items()})
        state["world_size"] = torch.tensor(trainer.world_size)
        state["first_batch"] = self.first_batch
        state["val_images"] = len(trainer.val_dataloaders.dataset)
        torch.save(state, self.out / f"teacher_rank{trainer.global_rank}.pt")


def main() -> None:
    cfg = load_config(sys.argv[1], sys.argv[2:])
    build_trainer = training.build_trainer

    def with_teacher_dump(cfg, out):
        trainer = build_trainer(cfg, out)
        trainer.callbacks.append(SaveTeacherPerRank(out))
        return trainer

    training.build_trainer = with_teacher_dump
    training.train(cfg)


if __name__ == "__main__":
    main()
