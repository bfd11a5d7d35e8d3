"""`train(cfg)`: the plain function behind `panoptic-st train` that tests call directly (evaluation and prediction:
`panoptic_st.prediction`)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from panoptic_st.checkpoints import load_network_weights
from panoptic_st.config import ConfigError, ExperimentConfig, load_config, to_yaml
from panoptic_st.data.datamodule import PanopticDataModule, check_roots
from panoptic_st.data.dataset import channel_statistics
from panoptic_st.data.labels import NUM_CLASSES
from panoptic_st.data.sampling import importance_probabilities
from panoptic_st.errors import RunStopped
from panoptic_st.guards import DivergenceGuard
from panoptic_st.loggers import build_logger, finish_wandb_run
from panoptic_st.media import MediaCallback
from panoptic_st.models.batchnorm import recalibrate_batchnorm
from panoptic_st.resume import (
    AtomicCheckpointIO,
    ConfiguredLearningRates,
    RNGStateCheckpoint,
    TimeLimitPerLaunch,
    last_checkpoint,
)

STAGES = ("semantic", "instance")


def build_module(cfg: ExperimentConfig) -> L.LightningModule:
    """The LightningModule of the configured stage."""
    if cfg.stage == "semantic":
        from panoptic_st.semantic.module import SemanticModule

        return SemanticModule(cfg.semantic)
    if cfg.stage == "instance":
        from panoptic_st.instance.module import InstanceModule

        return InstanceModule(cfg.instance)
    raise ValueError(f"stage must be one of {STAGES}, got '{cfg.stage}'")


def data_mode(cfg: ExperimentConfig) -> str:
    """Which batches the stage needs: labelled sources, or sources with target images."""
    branch = cfg.semantic if cfg.stage == "semantic" else cfg.instance
    needs_target = branch.mode == "self_train" or (cfg.stage == "semantic" and cfg.semantic.bn_adapt)
    return "adapt" if needs_target else "source"


def build_datamodule(cfg: ExperimentConfig) -> PanopticDataModule:
    """Data for the configured stage (the instance baseline only reads instance-labelled sources)."""
    require_instances = cfg.stage == "instance"
    return PanopticDataModule(cfg.data, data_mode(cfg), require_instances=require_instances, seed=cfg.seed)


def load_weights(module: L.LightningModule, path: str | Path) -> None:
    """Initialise a module's network from a checkpoint of the same branch, architecture and class set."""
    load_network_weights(module.net, dict(module.hparams), path)


VALIDATION_METRIC = {"semantic": "val/miou19", "instance": "val/ap50"}


class LastCheckpoint(ModelCheckpoint):
    """The periodic `last.ckpt` writer, with a state key that stays the same when a resumed run changes its step
    counts. At the end of training `train()` writes `final.ckpt`, or `last.ckpt` for an unfinished run, itself."""

    @property
    def state_key(self) -> str:
        return "LastCheckpoint"

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Nothing: Lightning would save `last.ckpt` here even after a `fast_dev_run`."""


def checkpoint_callbacks(cfg: ExperimentConfig, out: Path) -> list[ModelCheckpoint]:
    """`checkpoints/last.ckpt` every `checkpoint_every_n_steps` (default: at each validation), and
    `checkpoints/best.ckpt`, the best by the stage's validation metric."""
    t = cfg.trainer
    every = t.checkpoint_every_n_steps or t.val_check_interval or t.max_steps
    last = LastCheckpoint(dirpath=out / "checkpoints", save_last=True, save_top_k=0, every_n_train_steps=every,
                          enable_version_counter=False)
    best = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor=VALIDATION_METRIC[cfg.stage],
                           mode="max", save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    return [last, best]


def build_trainer(cfg: ExperimentConfig, out: Path) -> L.Trainer:
    """A Lightning Trainer from the config; validation every `val_check_interval` steps (default: at the end).

    Checkpoints are written atomically, with the generator states; the data module shards batches itself. The
    Lightning arguments of `trainer.lightning` are passed on last, so they win over the defaults set here.
    """
    t = cfg.trainer
    arguments = {
        "max_steps": t.max_steps, "accelerator": t.accelerator, "devices": t.devices, "strategy": t.strategy,
        "num_nodes": t.num_nodes, "precision": t.precision, "accumulate_grad_batches": t.accumulate_grad_batches,
        "log_every_n_steps": t.log_every_n_steps, "gradient_clip_val": t.gradient_clip_val,
        "val_check_interval": t.val_check_interval or t.max_steps, "check_val_every_n_epoch": None,
        "limit_val_batches": t.limit_val_batches, "num_sanity_val_steps": 0, "enable_model_summary": False,
    }
    return L.Trainer(
        **{**arguments, **t.lightning}, enable_progress_bar=t.progress_bar, logger=build_logger(cfg, out),
        default_root_dir=str(out), plugins=[AtomicCheckpointIO()], use_distributed_sampler=False,
        callbacks=[DivergenceGuard(t.on_nonfinite), *checkpoint_callbacks(cfg, out), RNGStateCheckpoint(),
                   ConfiguredLearningRates(), TimeLimitPerLaunch(), MediaCallback(cfg.logger.image_interval)],
    )


def _setup_run(cfg: ExperimentConfig) -> Path:
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(cfg))
    return out


def _scalars(metrics: dict) -> dict:
    """Logged metrics as floats, NaN as None (the metrics files are strict JSON)."""
    values = {k: float(v) for k, v in metrics.items()}
    return {k: v if math.isfinite(v) else None for k, v in values.items()}


WEIGHT_FILES = ("a torchvision ImageNet checkpoint (e.g. resnet101-63fe2227.pth, as SAC uses) or a timm checkpoint "
                "of the same encoder")


def check_encoder_initialisation(cfg: ExperimentConfig) -> None:
    """Refuse a weights file that does not exist, and a random encoder unless `allow_random_init`."""
    branch = cfg.semantic if cfg.stage == "semantic" else cfg.instance
    key = f"{cfg.stage}.encoder_weights_file"
    if branch.encoder_weights_file and not Path(branch.encoder_weights_file).is_file():
        raise ConfigError(f"{key}={branch.encoder_weights_file}: file not found; expected {WEIGHT_FILES}")
    if branch.encoder_weights_file or branch.init_checkpoint or branch.allow_random_init:
        return
    raise ConfigError(
        f"{cfg.name}: the {branch.encoder} encoder would start from random weights; set {key}=FILE (the real "
        f"configs read $RESNET101_WEIGHTS), {WEIGHT_FILES}, or {cfg.stage}.allow_random_init=true to train from "
        "scratch")


def unfinished_checkpoint(out: str | Path) -> Path | None:
    """`checkpoints/last.ckpt` of an unfinished run in `out`: one with no `final.ckpt` written after it."""
    last, final = last_checkpoint(out), Path(out) / "final.ckpt"
    if last is None or (final.is_file() and final.stat().st_mtime_ns >= last.stat().st_mtime_ns):
        return None
    return last


def remove_run_outputs(out: Path) -> None:
    """Delete the checkpoints, `final.ckpt` and `metrics.json` of the run in `out` (its logs stay)."""
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    for name in ("final.ckpt", "metrics.json"):
        (out / name).unlink(missing_ok=True)


def claim_output_dir(cfg: ExperimentConfig) -> None:
    """Refuse to start over an unfinished run unless told to resume it; `trainer.overwrite` deletes the checkpoints
    and results of the run there first."""
    out = Path(cfg.output_dir)
    if cfg.trainer.overwrite:
        remove_run_outputs(out)
        return
    last = unfinished_checkpoint(out)
    if last is not None and not cfg.trainer.resume:
        raise ConfigError(f"{out} holds an unfinished run ({last}, no final.ckpt after it): rerun with "
                          "trainer.resume=true to continue it, or trainer.overwrite=true to start over")


def train(cfg: ExperimentConfig) -> dict:
    """Run one training stage; writes `final.ckpt` (weights only: the optimizer state stays in
    `checkpoints/last.ckpt`, for resuming), `metrics.json` and the config into `cfg.output_dir`."""
    check_encoder_initialisation(cfg)
    check_roots(cfg.data, [*cfg.data.sources, cfg.data.target])
    claim_output_dir(cfg)
    out = _setup_run(cfg)
    module = build_module(cfg)
    branch = cfg.semantic if cfg.stage == "semantic" else cfg.instance
    if branch.init_checkpoint:
        load_weights(module, branch.init_checkpoint)
    datamodule = build_datamodule(cfg)
    resume_from = last_checkpoint(out) if cfg.trainer.resume else None
    if resume_from is not None:
        print(f"resuming from {resume_from}")
    elif cfg.stage == "semantic":
        prepare_self_training_start(module, datamodule, cfg)
    trainer = build_trainer(cfg, out)
    start = time.perf_counter()
    with resuming_into(resume_from):
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    seconds = time.perf_counter() - start
    if trainer.global_step < cfg.trainer.max_steps:
        stop_unfinished(trainer, cfg, out)
    final = out / "final.ckpt"
    trainer.save_checkpoint(final, weights_only=True)
    metrics = _scalars(trainer.callback_metrics)
    result = {"checkpoint": str(final), "train_seconds": round(seconds, 1), "metrics": metrics}
    if trainer.is_global_zero:
        (out / "metrics.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    finish_wandb_run()
    return result


@contextlib.contextmanager
def resuming_into(checkpoint: Path | None) -> Iterator[None]:
    """A resumed run writes into its own non-empty checkpoint folder: Lightning's warning about that is expected."""
    with warnings.catch_warnings():
        if checkpoint is not None:
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        yield


def stop_unfinished(trainer: L.Trainer, cfg: ExperimentConfig, out: Path) -> None:
    """Save the full state of an unfinished run to `checkpoints/last.ckpt` (unless a debug run) and stop."""
    finish_wandb_run()
    if cfg.trainer.lightning.get("fast_dev_run"):
        raise RunStopped(f"fast_dev_run ended after step {trainer.global_step}; nothing was saved")
    last = out / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(last)
    raise RunStopped(f"stopped at step {trainer.global_step} of {cfg.trainer.max_steps} (trainer.max_time or a "
                     f"signal); the state is in {last}: rerun with trainer.resume=true to continue")


def launched(cfg: ExperimentConfig, resume: bool = False, overwrite: bool = False) -> ExperimentConfig:
    """`cfg` with the given launch options `trainer.resume` and `trainer.overwrite`."""
    return dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, resume=resume, overwrite=overwrite))


def same_saved_config(cfg: ExperimentConfig) -> bool:
    """Whether `cfg.output_dir/config.yaml` holds `cfg`, but for how it was launched (resume, overwrite)."""
    saved = Path(cfg.output_dir) / "config.yaml"
    try:
        return saved.is_file() and to_yaml(launched(load_config(saved))) == to_yaml(launched(cfg))
    except ConfigError:
        return False


def finished_run(cfg: ExperimentConfig) -> dict | None:
    """The result of an earlier `train(cfg)` in `cfg.output_dir` that finished with an identical config, if any."""
    out = Path(cfg.output_dir)
    saved, metrics = out / "config.yaml", out / "metrics.json"
    if not (saved.is_file() and metrics.is_file()) or metrics.stat().st_mtime < saved.stat().st_mtime:
        return None
    return json.loads(metrics.read_text()) if same_saved_config(cfg) else None


def train_or_reuse(cfg: ExperimentConfig) -> dict:
    """`train(cfg)`, unless the same config already finished in `cfg.output_dir` (then its saved result); an
    unfinished run of the same config there is resumed. `trainer.overwrite` trains from scratch in any case."""
    if cfg.trainer.overwrite:
        return train(cfg)
    result = finished_run(cfg)
    if result is not None:
        print(f"reusing the finished run in {cfg.output_dir}")
        return result
    if unfinished_checkpoint(cfg.output_dir) is not None and same_saved_config(cfg):
        cfg = launched(cfg, resume=True)
    return train(cfg)


def prepare_self_training_start(module: L.LightningModule, datamodule: PanopticDataModule,
                                cfg: ExperimentConfig) -> None:
    """Options applied once before semantic training starts (their result is in every checkpoint)."""
    if cfg.semantic.source_renorm:
        match_source_to_target_statistics(module, datamodule, cfg.semantic.renorm_images)
    if cfg.semantic.adabn_init:
        adapt_batchnorm_before_self_training(module, datamodule)
    if cfg.semantic.importance_sampling:
        datamodule.target_class_probabilities = importance_probabilities(
            predicted_class_pixels(module, datamodule), cfg.semantic.importance_uniform)


@torch.no_grad()
def predicted_class_pixels(module: L.LightningModule, datamodule: PanopticDataModule) -> torch.Tensor:
    """[N, C] pixels of each class in the model's predictions on every target train image (in dataset order)."""
    if module.cfg.mode != "self_train":
        raise ValueError("semantic.importance_sampling only applies to semantic.mode=self_train")
    datamodule.setup()
    module.eval()
    counts = [torch.stack([torch.bincount(p.flatten(), minlength=NUM_CLASSES) for p in module(b["image"]).argmax(1)])
              for b in datamodule.target_plain_dataloader()]
    module.train()
    return torch.cat(counts)


def match_source_to_target_statistics(module: L.LightningModule, datamodule: PanopticDataModule,
                                      max_images: int) -> None:
    """SAC source re-normalisation: source images normalised so that their statistics match the target's."""
    datamodule.setup()
    if datamodule.source is None or datamodule.target is None:
        raise ValueError("semantic.source_renorm needs source and target training data (self_train or bn_adapt)")
    module.match_source_statistics(channel_statistics(datamodule.source, max_images),
                                   channel_statistics(datamodule.target, max_images))


def adapt_batchnorm_before_self_training(module: L.LightningModule, datamodule: PanopticDataModule) -> None:
    """Start self-training from the AdaBN model: BN statistics re-estimated on target images, then frozen."""
    if module.cfg.mode != "self_train":
        raise ValueError("semantic.adabn_init only applies to semantic.mode=self_train")
    datamodule.setup()
    adabn(module.net, datamodule)


def adabn(net: torch.nn.Module, datamodule: PanopticDataModule, max_batches: int = 50) -> int:
    """Re-estimate a network's BatchNorm statistics on target train images in [0, 1] (AdaBN); returns images
    used."""
    from panoptic_st.ops.images import normalize

    batches = (b["image"] for b in datamodule.target_stats_dataloader(max_batches))
    return recalibrate_batchnorm(net, batches, forward=lambda images: net(normalize(images)))
