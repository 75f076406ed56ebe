"""`hubtool eval`: score models on the hubtool lm-eval tasks and print the report."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit import api
from toolkit.cli.app import main


def _limit(value: str | None) -> int | float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number") from None
    return int(number) if number >= 1 else number


def _print_tasks_path(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from toolkit.sources.eval_tasks import tasks_dir

    click.echo(tasks_dir())
    ctx.exit()


@main.command("eval")
@click.option("-m", "--model", "models", multiple=True, required=True,
              help="A checkpoint folder, a LoRA adapter folder (its base is read from adapter_config.json), "
                   "the alias smollm2-135m, or with --backend openai the served model's name. Repeat to compare.")
@click.option("-s", "--suite", "suites", multiple=True,
              help="A task group: math, commonsense, gym, ood_from_gsm8k, ... (repeatable).")
@click.option("-t", "--tasks", help="Comma-separated task names, e.g. gsm8k,svamp or hubtool_gym_chain_sum_maj8.")
@click.option("--backend", type=click.Choice(["transformers", "vllm", "openai", "hf"]), default="transformers",
              show_default=True, help="transformers: in-process (hf, lm-eval's name for it, is taken too); "
                                      "vllm: GPU; openai: an OpenAI-compatible server (--base-url).")  # fmt: skip
@click.option("--base-url", help="With --backend openai: the server, e.g. http://localhost:8000/v1.")
@click.option("--data-parallel", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="With --backend vllm: N engines on N GPUs of this machine, each taking a share of the "
                   "documents (lm-eval's data_parallel_size; needs ray).")
@click.option("--limit", help="Documents per task: a count, or a fraction below 1.")
@click.option("--num-fewshot", type=int, help="Few-shot examples (worked solutions where the benchmark has them).")
@click.option("--batch-size", default="8", show_default=True, help="Generation batch size, or 'auto'.")
@click.option("--max-gen-toks", type=int, help="Cap generated tokens (tasks allow 512; 32-64 for a CPU smoke run).")
@click.option("--in-domain", help="Comma-separated tasks the models were trained on (default: each suite's own).")
@click.option("--data-dir", type=click.Path(path_type=Path),
              help="Local copies of benchmarks as <benchmark>.jsonl (e.g. gsm8k.jsonl), used instead of the Hub.")
@click.option("--prompt", metavar="NAME|FILE",
              help="Ask every model with this prompt template (cot, ranaldi-cot, ... or a FILE.jinja). Default: a "
                   "hubtool-trained student's training prompt (its hubtool_train.json), else each task's own.")
@click.option("--judge", metavar="BACKEND:MODEL",
              help="Also judge each model's answers against the first model's, pairwise (win rate; judge.jsonl).")
@click.option("--judge-max-tokens", type=int, default=256, show_default=True, help="Longest judge reply.")
@click.option("-o", "--output-dir", type=click.Path(path_type=Path), default=Path("eval-results"), show_default=True)
@click.option("--tasks-path", is_flag=True, is_eager=True, expose_value=False, callback=_print_tasks_path,
              help="Print the folder of the hubtool lm-eval tasks and exit (for lm_eval --include_path).")
def eval_command(models, suites, tasks, backend, base_url, data_parallel, limit, num_fewshot, batch_size, max_gen_toks,
                 in_domain, data_dir, prompt, judge, judge_max_tokens, output_dir):
    """Score models with lm-eval on in-domain and out-of-domain reasoning tasks.

    Writes lm-eval's results and samples per model, report.md (model x task with in-domain and
    out-of-domain averages), report.png and scores.json into --output-dir, and prints the table.
    A student is asked with the prompt it was trained on (its record names it); each column names
    the prompt it was asked with.

    \b
    Plain lm-eval runs the same tasks (the chat template is part of the prompt):
    lm_eval run --include_path "$(hubtool eval --tasks-path)" --tasks hubtool_gym_chain_sum \\
        --model hf --model_args pretrained=PATH --apply_chat_template --limit 10
    """
    result = api.score(
        list(models), suites=suites, tasks=tasks or (), output_dir=output_dir, backend=backend,
        base_url=base_url, limit=_limit(limit), num_fewshot=num_fewshot,
        batch_size=int(batch_size) if batch_size.isdigit() else batch_size, max_gen_toks=max_gen_toks,
        data_dir=data_dir, in_domain=in_domain, judge=judge, judge_max_new_tokens=judge_max_tokens,
        prompt=prompt, data_parallel=data_parallel,
    )
    click.echo(result.markdown)
    click.echo(f"\nwrote {output_dir}/report.md, report.png, scores.json and lm-eval results per model")
