"""Multi-task training on mixed CoT / PoT rows (Li et al., Findings of EMNLP 2024): the pure parts.

The loss of a batch is `L = α·L_CoT + (1-α)·L_PoT`, each term the mean token loss over the batch's
rows of that mode (distilling step-by-step's two-task loss, Hsieh et al. 2023, with the modes as its
tasks), over batches that hold both modes in the data's proportion (`mode_balanced_order`).

α is a hubtool setting, not a TRL key: a recipe holds it in TRL's own `env:` mapping,

    env:
      HUBTOOL_MIXED_ALPHA: 0.5

which `trl sft --config` exports as an environment variable and otherwise ignores (it trains plain
SFT on the same rows), while `hubtool train` reads it from the recipe and trains with
`MixedSFTTrainer` (toolkit.methods.mixed.trainer); `--set HUBTOOL_MIXED_ALPHA=0.3` overrides it and
`--set HUBTOOL_MIXED_ALPHA=none` trains plain SFT. hubtool reads the recipe, never the process
environment, so the value is the recipe's and a later run in the same process is not affected.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from toolkit.errors import UserError

MIXED_ALPHA = "HUBTOOL_MIXED_ALPHA"
MODE_COLUMN = "mode"  # what `hubtool build-dataset mixed` writes: "cot" | "pot"
MODES = ("cot", "pot")


def parse_alpha(value: Any) -> float | None:
    """α from a recipe or `--set`: a number in [0, 1]; "none" (or empty) for plain SFT."""
    text = str(value).strip().lower()
    if text in ("", "none", "null"):
        return None
    try:
        alpha = float(text)
    except ValueError:
        raise UserError(f"{MIXED_ALPHA}={value!r} is not a number; give the CoT loss weight α in [0, 1], or none") from None
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"{MIXED_ALPHA}={value!r} is out of range; α weighs the CoT loss and must be in [0, 1]")
    return alpha


def mode_balanced_order(modes: Sequence[str], seed: int) -> list[int]:
    """Every row index once, each mode shuffled (by `seed`) and the modes interleaved evenly, so any
    run of consecutive indices holds the modes in the data's proportion (a batch of 4 from a half-PoT
    set: 2 and 2). Rows of another mode are kept, after the CoT and PoT ones are spread."""
    rng = random.Random(seed)
    pools = {m: [i for i, mode in enumerate(modes) if mode == m] for m in MODES}
    others = [i for i, mode in enumerate(modes) if mode not in MODES]
    for pool in pools.values():
        rng.shuffle(pool)
    total = sum(len(p) for p in pools.values())
    order: list[int] = []
    taken = dict.fromkeys(MODES, 0)
    for k in range(total):
        # the mode furthest behind its share of the first k+1 positions (CoT first on a tie)
        m = max(MODES, key=lambda m: (len(pools[m]) * (k + 1) / total - taken[m], m == "cot"))
        order.append(pools[m][taken[m]])
        taken[m] += 1
    return order + others


class ModeBalancedSampler:
    """A train sampler giving `mode_balanced_order`, reshuffled each epoch (transformers calls
    `set_epoch`; each pass advances the epoch too, so two passes never repeat an order)."""

    def __init__(self, modes: Sequence[str], seed: int = 0) -> None:
        self.modes = list(modes)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.modes)

    def __iter__(self):
        order = mode_balanced_order(self.modes, self.seed + self.epoch)
        self.epoch += 1
        return iter(order)
