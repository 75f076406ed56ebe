"""Where hubtool keeps things on disk. Everything lives under `$HUBTOOL_HOME` (default
`~/.cache/hubtool`): the local dataset registry, the teacher-call cache, converted models."""

from __future__ import annotations

import os
from pathlib import Path

MERGED = "merged"  # TRAIN_OUT/merged: a LoRA adapter folded into its base (`hubtool train --merge`)


def hubtool_home() -> Path:
    return Path(os.environ.get("HUBTOOL_HOME") or Path.home() / ".cache" / "hubtool").expanduser()


def registry_dir() -> Path:
    """The local registry: one folder per `org/name`, laid out like a Hub dataset repo."""
    return hubtool_home() / "datasets"


def call_cache_path() -> Path:
    """The teacher-call cache shared by every build (see toolkit.teachers.cache)."""
    return hubtool_home() / "cache" / "calls.sqlite"


def models_dir() -> Path:
    """Converted checkpoints (GGUF -> safetensors); `$HUBTOOL_MODEL_CACHE` overrides."""
    env = os.environ.get("HUBTOOL_MODEL_CACHE")
    return Path(env).expanduser() if env else hubtool_home() / "models"
