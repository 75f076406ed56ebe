"""The GPU check: hubtool's vLLM build beside vLLM itself, one LoRA SFT step, one `hubtool eval --backend vllm`.

    python bench/gpu_check.py OUT [--model Qwen/Qwen2.5-0.5B-Instruct] [--prompts 256] [--samples 4]

(a) build: `hubtool build-dataset cot --source gym:basic_arithmetic --limit N --teacher vllm:MODEL --keep all`
    (the same build, run here on an engine loaded once) beside vLLM's own `LLM.generate` on the very
    requests the build made (recorded as it made them: chat-templated prompts, the teacher's own
    SamplingParams, seeds included), prefix cache emptied before each side; the figure is the ratio
    of completion tokens per second, hubtool / vLLM. It runs in a child process, so its engine's GPU
    memory is free again for (b) and (c).
(b) train: `hubtool train cot/smollm2-135m-lora --set model_name_or_path=MODEL --set dataset_name=(a's run)
    --set use_cpu=false --set bf16=true --set max_steps=1` (a shipped LoRA recipe, on the GPU).
(c) eval: `hubtool eval -m MODEL --backend vllm -t hubtool_gym_chain_sum --limit 20`.

It writes OUT/gpu_check.json (every figure, command and version) and OUT/gpu_check.md (a table), and
exits 1 when a check failed. Without a CUDA GPU or vLLM it stops at once, in one line. The model is a
Hub id, or offline (HF_HUB_OFFLINE=1) a local folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # toolkit from this checkout

DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
RECIPE = "cot/smollm2-135m-lora"  # a CPU recipe: the check turns use_cpu off and bf16 on
TASK = "hubtool_gym_chain_sum"  # reasoning-gym: generated here, no download


@dataclass
class Check:
    """One check's outcome: what ran, whether it worked, how long it took, its figure in words."""

    name: str
    ok: bool
    seconds: float
    summary: str
    command: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for gpu_check.json, gpu_check.md and the runs")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a Hub id, or a local folder (offline)")
    parser.add_argument("--source", default="gym:basic_arithmetic", help="the build's --source")
    parser.add_argument("--prompts", type=int, default=256, help="problems in the build (its --limit)")
    parser.add_argument("--samples", type=int, default=4, help="samples per problem")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5, help="for the build's engine")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--task", default=TASK, help="the lm-eval task of check (c)")
    parser.add_argument("--eval-limit", type=int, default=20, help="documents of --task")
    parser.add_argument("--only", choices=["build"], help=argparse.SUPPRESS)  # the child process of (a)
    args = parser.parse_args(argv)
    for name in ("prompts", "samples", "max_new_tokens", "eval_limit"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def gpu_problem() -> str | None:
    """Why this machine cannot run the check, or None."""
    missing = []
    if importlib.util.find_spec("vllm") is None:
        missing.append("vllm is not installed (pip install 'hubtool[vllm]')")
    try:
        import torch

        if not torch.cuda.is_available():
            missing.append(f"torch {torch.__version__} sees no CUDA GPU")
    except ImportError:
        missing.append("torch is not installed")
    return f"gpu_check: needs a CUDA GPU and vLLM: {'; '.join(missing)}" if missing else None


def markdown_table(checks: list[Check], machine: dict[str, str]) -> str:
    """The figures as markdown: one line naming the machine, then one row per check."""
    head = ", ".join(f"{k} {v}" for k, v in machine.items())
    rows = [f"Machine: {head}.", "", "| check | result | seconds | figure |", "|---|---|---:|---|"]
    rows += [f"| {c.name} | {'ok' if c.ok else 'FAILED'} | {c.seconds:.1f} | {c.summary} |" for c in checks]
    return "\n".join(rows) + "\n"


def write_report(out: Path, checks: list[Check], machine: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine, "checks": [asdict(c) for c in checks]}
    (out / "gpu_check.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown_table(checks, machine))


# (a) the build beside LLM.generate: runs in the child process (`--only build`)


def build_figures(args: argparse.Namespace) -> dict[str, Any]:
    import vllm

    from toolkit.builders.engine import build_dataset
    from toolkit.methods import get_method
    from toolkit.teachers.vllm_backend import VLLMTeacher

    teacher = VLLMTeacher.from_spec(args.model, gpu_memory_utilization=args.gpu_memory_utilization,
                                    max_model_len=args.max_model_len)  # fmt: skip
    llm = teacher.llm
    llm.generate(["Say hello."], vllm.SamplingParams(max_tokens=8), use_tqdm=False)  # warm-up, neither side
    recorded: list = []
    tokens = {"hubtool": 0}
    generate = teacher.generate_batch

    def recording(requests, on_result=None):
        recorded.extend(requests)
        results = generate(requests, on_result)
        tokens["hubtool"] += sum(c.completion_tokens for result in results for c in result)
        return results

    teacher.generate_batch = recording  # the build's calls, as made, for the other side
    run = args.out / "build"
    config = get_method("cot").config(
        source=args.source, limit=args.prompts, samples=args.samples, keep="all", max_new_tokens=args.max_new_tokens,
        teacher=f"vllm:{args.model}", out=str(run), overwrite=True, cache=str(args.out / "build-calls.sqlite"),
    )  # fmt: skip
    Path(config.cache).unlink(missing_ok=True)  # every call made anew
    llm.reset_prefix_cache()
    t0 = time.perf_counter()
    manifest = build_dataset(config, method=get_method("cot"), teachers={"teacher": teacher})
    hubtool_s = time.perf_counter() - t0

    tokenizer = llm.get_tokenizer()
    prompts = [tokenizer.apply_chat_template(list(r.messages), tokenize=False, add_generation_prompt=True)
               for r in recorded]  # fmt: skip
    params = [teacher._params(r) for r in recorded]  # the teacher's SamplingParams, seeds included
    llm.reset_prefix_cache()
    t0 = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    vllm_s = time.perf_counter() - t0
    vllm_tokens = sum(len(o.token_ids) for out in outputs for o in out.outputs)
    hubtool_rate, vllm_rate = tokens["hubtool"] / hubtool_s, vllm_tokens / vllm_s
    return {
        "run": str(run), "requests": len(recorded), "rows": manifest.counts.get("kept"),
        "samples": manifest.counts.get("samples"), "hubtool_seconds": hubtool_s, "hubtool_tokens": tokens["hubtool"],
        "vllm_seconds": vllm_s, "vllm_tokens": vllm_tokens, "hubtool_tokens_per_s": hubtool_rate,
        "vllm_tokens_per_s": vllm_rate, "ratio": hubtool_rate / vllm_rate, "vllm_version": vllm.__version__,
    }  # fmt: skip


# The three checks, each in its own process


def run_step(name: str, argv: list[str], out: Path) -> tuple[bool, float, str]:
    """Run one command; (ok, seconds, the last lines of its output when it failed). Its output goes to
    OUT/NAME.log."""
    t0 = time.perf_counter()
    with open(out / f"{name}.log", "w") as log:
        rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    seconds = time.perf_counter() - t0
    tail = " / ".join((out / f"{name}.log").read_text().strip().splitlines()[-3:])
    return rc == 0, seconds, "" if rc == 0 else f"exit {rc}: {tail}"[:400]


def check_build(args: argparse.Namespace) -> Check:
    argv = [sys.executable, __file__, str(args.out), "--only", "build", "--model", args.model, "--source", args.source,
            "--prompts", str(args.prompts), "--samples", str(args.samples), "--max-new-tokens", str(args.max_new_tokens),
            "--gpu-memory-utilization", str(args.gpu_memory_utilization), "--max-model-len", str(args.max_model_len)]  # fmt: skip
    ok, seconds, error = run_step("build", argv, args.out)
    figures = json.loads((args.out / "build.json").read_text()) if ok else {}
    summary = error or (
        f"{figures['ratio']:.2f}x vLLM's LLM.generate in completion tokens/s (hubtool {figures['hubtool_tokens_per_s']:.0f}, "
        f"vLLM {figures['vllm_tokens_per_s']:.0f}; {figures['requests']} requests x {args.samples} samples)"
    )  # fmt: skip
    command = (f"hubtool build-dataset cot --source {args.source} --limit {args.prompts} --samples {args.samples} "
               f"--keep all --teacher vllm:{args.model}")  # fmt: skip
    return Check("build: vllm backend vs LLM.generate", ok, seconds, summary, command, figures)


def check_train(args: argparse.Namespace) -> Check:
    out = args.out / "train"
    sets = [f"model_name_or_path={args.model}", f"dataset_name={args.out / 'build'}", "use_cpu=false", "bf16=true",
            "max_steps=1", "save_strategy=no"]  # fmt: skip
    argv = ["train", RECIPE, *[w for s in sets for w in ("--set", s)], "--output-dir", str(out)]
    ok, seconds, error = run_step("train", [sys.executable, "-m", "toolkit", *argv], args.out)
    figures = {}
    if ok:
        record = json.loads((out / "hubtool_train.json").read_text())["training"]
        figures = {k: record.get(k) for k in ("global_steps", "seconds", "seconds_per_step", "train_loss")}
    summary = error or (f"{figures['global_steps']} LoRA SFT step, train loss {figures['train_loss']:.4f}, "
                        f"{figures['seconds']:.1f} s in the trainer")  # fmt: skip
    return Check("train: one LoRA SFT step", ok, seconds, summary, "hubtool " + " ".join(argv), figures)


def check_eval(args: argparse.Namespace) -> Check:
    out = args.out / "eval"
    argv = ["eval", "-m", args.model, "--backend", "vllm", "-t", args.task, "--limit", str(args.eval_limit),
            "--max-gen-toks", str(args.max_new_tokens), "-o", str(out)]  # fmt: skip
    ok, seconds, error = run_step("eval", [sys.executable, "-m", "toolkit", *argv], args.out)
    figures = json.loads((out / "scores.json").read_text()) if ok else {}
    summary = error or f"{args.task}, {args.eval_limit} documents: {score_text(figures.get('scores', {}), args.task)}"
    return Check("eval: hubtool eval --backend vllm", ok, seconds, summary, "hubtool " + " ".join(argv), figures)


def score_text(scores: dict[str, dict[str, dict[str, float]]], task: str) -> str:
    """scores.json's model -> task -> filter -> score, for one task: 'label: filter 0.250, ...'."""
    parts = [f"{label}: " + ", ".join(f"{name} {value:.3f}" for name, value in sorted(by_task[task].items()))
             for label, by_task in scores.items() if task in by_task]  # fmt: skip
    return "; ".join(parts) or "no score"


def machine() -> dict[str, str]:
    import torch
    import vllm

    return {"GPU": torch.cuda.get_device_name(0), "torch": torch.__version__, "vLLM": vllm.__version__}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = gpu_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only == "build":
        (args.out / "build.json").write_text(json.dumps(build_figures(args), indent=2) + "\n")
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    checks = [check_build(args)]
    # (b) trains on (a)'s rows
    checks.append(check_train(args) if checks[0].ok else Check("train: one LoRA SFT step", False, 0.0,
                                                              "not run: it trains on the build's rows"))  # fmt: skip
    checks.append(check_eval(args))
    write_report(args.out, checks, {**machine(), "model": args.model})
    print((args.out / "gpu_check.md").read_text(), end="")
    failed = [c.name for c in checks if not c.ok]
    if failed:
        print(f"gpu_check: FAILED: {', '.join(failed)} (logs in {args.out})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
