"""Pre-training: configs, the trainer, distributed set-up, checkpoints and run logging.

Example::

    from mmclip.train import Trainer, load_config

    config = load_config("configs/demo.yaml", ["steps=100", "out_dir=runs/demo"])
    result = Trainer(config).fit()          # runs/demo/model is the trained model
    Trainer(config, resume=True).fit()      # continue a run from its latest checkpoint
"""

from .checkpoint import (
    CheckpointError,
    LoadedCheckpoint,
    capture_rng_state,
    find_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
)
from .config import (
    ConfigError,
    DataConfig,
    ModelSection,
    OptimConfig,
    ScheduleConfig,
    SourceConfig,
    TrainConfig,
    config_to_dict,
    load_config,
    save_config,
)
from .data import build_loader, load_records, load_source_records, train_tokenizer
from .distributed import DistInfo, cleanup_distributed, init_distributed
from .logging import MetricsLogger, read_metrics
from .schedule import WarmupCosine, build_scheduler
from .trainer import Trainer, TrainResult, build_optimizer, seed_everything

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataConfig",
    "DistInfo",
    "LoadedCheckpoint",
    "MetricsLogger",
    "ModelSection",
    "OptimConfig",
    "ScheduleConfig",
    "SourceConfig",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "WarmupCosine",
    "build_loader",
    "build_optimizer",
    "build_scheduler",
    "capture_rng_state",
    "cleanup_distributed",
    "config_to_dict",
    "find_checkpoint",
    "init_distributed",
    "latest_checkpoint",
    "load_checkpoint",
    "load_config",
    "load_records",
    "load_source_records",
    "read_metrics",
    "restore_rng_state",
    "save_config",
    "seed_everything",
    "train_tokenizer",
]
