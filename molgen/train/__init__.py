"""Training: the config schema (`config`), checkpoints and random state (`checkpoint`), EMA and
the optimizer (`ema`), DistributedDataParallel (`distributed`), the task contract and registry
(`task`), the `Trainer` (`trainer`), and using a trained model (`trained`)."""
from .checkpoint import (CHECKPOINT, CHECKPOINT_KEYS, LOG, MODEL_KEYS, carry_checkpoint, load_checkpoint,
                         read_log, rng_state, save_checkpoint, seed_everything, set_rng_state,
                         step_generator)
from .config import CONFIG_DIR, ConfigError, TrainConfig, build_schedule, config_from_dict, load_config
from .distributed import DistEnv, init_distributed
from .ema import EMA, make_optimizer
from .task import TASKS, Batch, Task, make_task, task_class
from .trained import Trained, export_model, load_trained
from .trainer import Trainer, TrainingDiverged, train

__all__ = [
    "CHECKPOINT", "CHECKPOINT_KEYS", "LOG", "MODEL_KEYS", "carry_checkpoint", "load_checkpoint", "read_log",
    "rng_state", "save_checkpoint", "set_rng_state", "seed_everything", "step_generator", "CONFIG_DIR",
    "ConfigError", "TrainConfig", "build_schedule", "config_from_dict", "load_config", "DistEnv",
    "init_distributed", "EMA", "make_optimizer", "TASKS", "Batch", "Task", "make_task", "task_class",
    "Trained", "export_model", "load_trained", "Trainer", "TrainingDiverged", "train",
]
