"""TRL's two trainers as `Trainer` factories (`toolkit.builders.method.SFT` and `DPO` name them): a
method that trains its rows as TRL does names one of these; one that brings its own loss names its
own factory (as the mixed method does, for its CoT/PoT loss)."""

from __future__ import annotations

import importlib
from typing import Any

from toolkit.builders.method import Trainer


def sft_trainer(*, settings: dict[str, Any], **trl_args: Any):
    from trl import SFTTrainer  # heavy: torch and transformers

    return SFTTrainer(**trl_args)


def dpo_trainer(*, settings: dict[str, Any], **trl_args: Any):
    from trl import DPOTrainer  # heavy: torch and transformers

    return DPOTrainer(**trl_args)


def load_factory(trainer: Trainer):
    """The callable `trainer.factory` names ("module:callable"), imported now."""
    module, _, name = trainer.factory.partition(":")
    return getattr(importlib.import_module(module), name)
