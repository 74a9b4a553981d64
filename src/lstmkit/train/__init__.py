"""Training: config, masked losses, step functions, the optimiser and schedule, the training loop,
its logs, checkpoints, seeding and data-parallel training (``lstmkit.train.distributed``)."""

from __future__ import annotations

from lstmkit.train.checkpoint import (
    Checkpoint,
    CheckpointError,
    latest_checkpoint,
    latest_intact_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from lstmkit.train.config import (
    Config,
    DataConfig,
    KeyDoc,
    ModelConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    describe_keys,
    dump_config,
    format_key_docs,
    load_config,
    require_at_least,
    section_defaults,
    set_values,
)
from lstmkit.train.logs import EpochLog, StepLog
from lstmkit.train.loop import FitResult, evaluate, fit
from lstmkit.train.losses import ctc_loss, distillation_loss, masked_cross_entropy, masked_mse
from lstmkit.train.optim import (
    check_schedule,
    make_optimizer,
    make_scheduler,
    param_groups,
    planned_steps,
    warmup_cosine,
)
from lstmkit.train.seed import capture_rng_state, restore_rng_state, seed_everything
from lstmkit.train.steps import lm_step

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "Config",
    "DataConfig",
    "EpochLog",
    "FitResult",
    "KeyDoc",
    "ModelConfig",
    "StepLog",
    "TrainConfig",
    "apply_overrides",
    "capture_rng_state",
    "check_schedule",
    "config_from_dict",
    "config_to_dict",
    "ctc_loss",
    "describe_keys",
    "distillation_loss",
    "dump_config",
    "evaluate",
    "fit",
    "format_key_docs",
    "latest_checkpoint",
    "latest_intact_checkpoint",
    "lm_step",
    "load_checkpoint",
    "load_config",
    "make_optimizer",
    "make_scheduler",
    "masked_cross_entropy",
    "masked_mse",
    "param_groups",
    "planned_steps",
    "require_at_least",
    "restore_rng_state",
    "save_checkpoint",
    "section_defaults",
    "seed_everything",
    "set_values",
    "warmup_cosine",
]
