"""One training run, top to bottom: data by name -> student -> TRL trainer -> weights + record + card.

Everything that can be wrong with the input (recipe, overrides, dataset name, row format) fails
before a model is loaded; the model is built the way TRL's own `sft.py` / `dpo.py` scripts build it.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.rundir import command_line, library_versions, now
from toolkit.training.data import TrainingData, training_splits
from toolkit.training.model import MERGED, Student, merge_adapter, record_hub_base, resolve_student
from toolkit.training.provenance import dataset_record, peft_record, write_outputs
from toolkit.training.recipe import Recipe
from toolkit.training.trainers import load_factory
from toolkit.version import __version__

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    merged_dir: Path | None
    record: dict[str, Any]  # what OUT/hubtool_train.json holds


def train(recipe: Recipe, *, merge: bool = False, where: dict[str, str] | None = None) -> TrainResult:
    """Train `recipe`; write the weights (the adapter, for LoRA), the provenance record and the card to its output_dir.

    `merge` also writes OUT/merged/: the adapter folded into the base, full weights plus tokenizer.
    `where` trains on the rows whose columns hold the given values (an ablation on a subset).
    """

    script = recipe.script
    wants_eval = recipe.training.eval_strategy != "no"
    kind = recipe.trainer.config
    data, eval_data = training_splits(script.dataset_name, kind, train_split=script.dataset_train_split,
                                      eval_split=script.dataset_test_split if wants_eval else None,
                                      seed=recipe.training.seed, config=script.dataset_config, where=where,
                                      extra=recipe.trainer.columns if recipe.settings else None)  # fmt: skip
    student = resolve_student(recipe.model.model_name_or_path)
    started = now()
    trainer = build_trainer(recipe, data, student, eval_data)
    loss_tokens = loss_token_stats(trainer.train_dataset) if kind == "sft" else None
    t0 = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=recipe.training.resume_from_checkpoint)
    seconds = time.perf_counter() - t0
    out = Path(recipe.training.output_dir)
    trainer.save_model(str(out))
    if not trainer.accelerator.is_main_process:
        return TrainResult(out, None, {})
    if recipe.model.use_peft:
        record_hub_base(out, student)
    merged = _merge(out, student, recipe) if merge else _drop_stale_merge(out, student)
    record = {
        "hubtool_version": __version__, "trainer": kind, "command": command_line(),
        "output_dir": str(out), "started_at": started, "finished_at": now(),
        "recipe": {"path": str(recipe.path), "sha256": recipe.sha256, "overrides": recipe.overrides,
                   "adjustments": recipe.adjustments, "settings": recipe.settings},
        "loss": trainer.loss_record() if hasattr(trainer, "loss_record") else None,  # a method's own loss
        "dataset": dataset_record(data),
        "eval_dataset": {"split": eval_data.split, "rows": eval_data.rows} if eval_data else None,
        "model": {"requested": student.requested, "path": student.path, "base_model": student.base_model,
                  "revision": student.revision, "note": student.note},
        "peft": peft_record(recipe.model),
        "training": training_record(trainer, output, seconds, loss_tokens),
        "outputs": {"adapter": bool(recipe.model.use_peft), "merged": str(merged) if merged else None},
        "versions": library_versions(),
    }  # fmt: skip
    write_outputs(out, record, recipe.text)
    if merged:
        shutil.copy2(out / "README.md", merged / "README.md")
    return TrainResult(out, merged, record)


def build_trainer(
    recipe: Recipe, data: TrainingData, student: Student, eval_data: TrainingData | None = None
):
    """The recipe's trainer (`Recipe.trainer.factory`: TRL's SFTTrainer or DPOTrainer, or a method's own),
    with the model, quantization and LoRA settings of TRL's own scripts."""
    from trl import get_peft_config, get_quantization_config  # heavy: torch and transformers

    m, args = recipe.model, recipe.training
    init = {"revision": m.model_revision, "trust_remote_code": args.trust_remote_code,
            "attn_implementation": m.attn_implementation, "dtype": m.dtype}  # fmt: skip
    args.model_init_kwargs = {**init, **(args.model_init_kwargs or {})}
    return load_factory(recipe.trainer)(
        model=student.path, args=args, train_dataset=data.dataset,
        eval_dataset=eval_data.dataset if eval_data else None,
        quantization_config=get_quantization_config(m), peft_config=get_peft_config(m), settings=recipe.settings,
    )  # fmt: skip


def loss_token_stats(dataset, sample: int = 1000) -> dict[str, Any]:
    """How many tokens carry the loss, from the labels TRL built (on the first `sample` rows): prompt
    tokens are -100 when only completions train."""
    if "labels" not in dataset.column_names:
        return {"completion_only": False, "trained_fraction": 1.0}
    labels = dataset.select(range(min(sample, len(dataset))))["labels"]
    total = sum(len(row) for row in labels)
    trained = sum(sum(1 for t in row if t != -100) for row in labels)
    first_masked = all(row[0] == -100 for row in labels if row)
    return {"completion_only": first_masked and trained < total, "trained_tokens": trained,
            "total_tokens": total, "trained_fraction": round(trained / total, 4) if total else 0.0}  # fmt: skip


def training_record(trainer, output, seconds: float, loss_tokens: dict | None) -> dict[str, Any]:
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    finite = all(math.isfinite(x) for x in losses)
    if not finite:
        log.error("the training loss became non-finite (%s); lower learning_rate or check the data", losses)
    steps = trainer.state.global_step
    return {
        "global_steps": steps, "seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / steps, 3) if steps else None,
        "train_loss": output.training_loss, "losses": losses, "losses_finite": finite,
        "loss_tokens": loss_tokens, "log_history": history,
    }  # fmt: skip


def _drop_stale_merge(out: Path, student: Student) -> None:
    """An OUT/merged/ left by an earlier run no longer matches the new adapter: remove it (unless it is
    the very student this run trained on top of)."""
    stale = out / MERGED
    if stale.is_dir() and stale.resolve() != Path(student.path).resolve():
        log.warning("removing %s: it merged an earlier run's adapter (use --merge to write a new one)", stale)
        shutil.rmtree(stale)


def _merge(out: Path, student: Student, recipe: Recipe) -> Path | None:
    if not recipe.model.use_peft:
        log.warning("--merge: %s is a full fine-tune, already full weights; nothing to merge", out)
        return None
    return merge_adapter(out, out / MERGED, base_path=student.path)
