"""`MixedSFTTrainer`: TRL's SFTTrainer with the mixed CoT / PoT loss and mode-balanced batches.

Everything TRL's SFTTrainer does stays (chat template, completion-only labels, LoRA, truncation);
three things change, all around the rows' `mode` column (see toolkit.methods.mixed.training):
- the column survives to the batch (`mode_id`: 0 CoT, 1 PoT) beside TRL's tensors;
- the train sampler is `ModeBalancedSampler`, so every batch holds both modes in the data's proportion;
- `compute_loss` returns `α·L_CoT + (1-α)·L_PoT`, each the mean token cross-entropy over that mode's
  completion tokens in the batch (a mode absent from a batch adds nothing), and logs both terms.
The loss is a per-batch mean, so the Trainer divides it by the gradient-accumulation steps
(`loss_is_scaled_for_ga = False`).
"""

from __future__ import annotations

import logging
from collections import Counter

import torch
import torch.nn.functional as F
from trl import SFTTrainer

from toolkit.errors import UserError
from toolkit.methods.mixed.training import MIXED_ALPHA, MODE_COLUMN, MODES, ModeBalancedSampler

log = logging.getLogger(__name__)
MODE_ID = "mode_id"


class _WithModes:
    """TRL's collator, plus the batch's modes as a tensor."""

    def __init__(self, collator) -> None:
        self.collator = collator

    def __call__(self, examples: list[dict]) -> dict:
        ids = torch.tensor([MODES.index(e[MODE_COLUMN]) if e.get(MODE_COLUMN) in MODES else -1 for e in examples])
        batch = self.collator([{k: v for k, v in e.items() if k != MODE_COLUMN} for e in examples])
        batch[MODE_ID] = ids
        return batch


def mixed_trainer(*, settings: dict, **trl_args) -> SFTTrainer:
    """The mixed method's trainer factory (`Trainer.factory`): MixedSFTTrainer with the recipe's α, or
    TRL's plain SFTTrainer when the recipe sets none (`--set HUBTOOL_MIXED_ALPHA=none`)."""
    alpha = settings.get(MIXED_ALPHA)
    return SFTTrainer(**trl_args) if alpha is None else MixedSFTTrainer(alpha=alpha, **trl_args)


class MixedSFTTrainer(SFTTrainer):
    def __init__(self, *args, alpha: float, **kwargs) -> None:
        self.alpha = alpha
        super().__init__(*args, **kwargs)
        if self.args.packing or self.args.padding_free:
            raise UserError("the mixed loss needs one row per sequence: set packing and padding_free to false")
        modes = self.train_dataset[MODE_COLUMN]
        self.mode_counts = Counter(modes)
        missing = [m for m in MODES if not self.mode_counts[m]]
        if missing:
            log.warning("mixed loss: the training rows hold no %s row, so its term is always 0 (the loss is "
                        "%s of the other mode's)", "/".join(m.upper() for m in missing), "α" if missing == ["pot"] else "1-α")  # fmt: skip
        self.data_collator = _WithModes(self.data_collator)
        self.loss_is_scaled_for_ga = False

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if MODE_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, MODE_COLUMN]

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return ModeBalancedSampler(dataset[MODE_COLUMN], seed=self.args.seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        modes = inputs.pop(MODE_ID)
        labels = inputs.pop("labels")
        outputs = model(**inputs, use_cache=False)
        target = labels[:, 1:]
        logits = outputs.logits[:, :-1, :].float()
        per_token = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="none")
        counted = (target != -100).float()
        terms = {}
        for i, mode in enumerate(MODES):
            rows = modes == i
            terms[mode] = (per_token[rows] * counted[rows]).sum() / counted[rows].sum().clamp(min=1)
        loss = self.alpha * terms["cot"] + (1 - self.alpha) * terms["pot"]
        split = "train" if model.training else "eval"
        for mode in MODES:
            if (modes == MODES.index(mode)).any():
                self._metrics[split][f"loss_{mode}"].append(terms[mode].detach().item())
        return (loss, outputs) if return_outputs else loss

    def loss_record(self) -> dict:
        """What the loss was, for the provenance record (hubtool_train.json `loss`)."""
        return {"kind": "mixed", "formula": "alpha * L_cot + (1 - alpha) * L_pot", "alpha": self.alpha,
                "rows_per_mode": dict(self.mode_counts), "batches": "mode-balanced"}  # fmt: skip
