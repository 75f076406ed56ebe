"""bench/gpu_check.py, as far as a machine without a GPU can take it: its arguments, its one-line refusal,
its table, and the plumbing of check (a) on a stand-in `vllm` module (the real one needs a GPU)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tests.conftest import load_module

ROOT = Path(__file__).resolve().parent.parent
gpu_check = load_module(ROOT / "bench" / "gpu_check.py", "gpu_check")


def test_arguments_and_defaults(tmp_path):
    args = gpu_check.parse_args([str(tmp_path)])
    assert (args.out, args.model, args.prompts, args.samples, args.task) == (
        tmp_path, "Qwen/Qwen2.5-0.5B-Instruct", 256, 4, "hubtool_gym_chain_sum")
    args = gpu_check.parse_args([str(tmp_path), "--model", "/models/qwen", "--prompts", "8", "--eval-limit", "5"])
    assert (args.model, args.prompts, args.eval_limit) == ("/models/qwen", 8, 5)
    with pytest.raises(SystemExit):
        gpu_check.parse_args([str(tmp_path), "--prompts", "0"])


def test_without_a_gpu_it_refuses_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("gpu_check: needs a CUDA GPU and vLLM: vllm is not installed")
    assert out.stderr.count("\n") == 1 and not (tmp_path / "out").exists()


def test_markdown_table_and_json(tmp_path):
    checks = [
        gpu_check.Check("build: vllm backend vs LLM.generate", True, 41.25, "0.98x vLLM's LLM.generate", "hubtool b",
                        {"ratio": 0.98}),
        gpu_check.Check("train: one LoRA SFT step", False, 3.0, "exit 1: CUDA out of memory"),
    ]  # fmt: skip
    machine = {"GPU": "NVIDIA H100 80GB HBM3", "vLLM": "0.11.0", "model": "Qwen/Qwen2.5-0.5B-Instruct"}
    expected = (
        "Machine: GPU NVIDIA H100 80GB HBM3, vLLM 0.11.0, model Qwen/Qwen2.5-0.5B-Instruct.\n"
        "\n"
        "| check | result | seconds | figure |\n"
        "|---|---|---:|---|\n"
        "| build: vllm backend vs LLM.generate | ok | 41.2 | 0.98x vLLM's LLM.generate |\n"
        "| train: one LoRA SFT step | FAILED | 3.0 | exit 1: CUDA out of memory |\n"
    )
    assert gpu_check.markdown_table(checks, machine) == expected
    gpu_check.write_report(tmp_path, checks, machine)
    assert (tmp_path / "gpu_check.md").read_text() == expected
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["machine"] == machine and data["checks"][0]["figures"] == {"ratio": 0.98}
    assert data["checks"][1]["ok"] is False


def test_score_text_reads_scores_json():
    scores = {"qwen": {"hubtool_gym_chain_sum": {"exact_match,flexible": 0.25, "exact_match,strict": 0.2}}}
    assert gpu_check.score_text(scores, "hubtool_gym_chain_sum") == (
        "qwen: exact_match,flexible 0.250, exact_match,strict 0.200")
    assert gpu_check.score_text(scores, "gsm8k") == "no score"


class _Output:
    def __init__(self, n: int, tokens: int) -> None:
        self.prompt_token_ids = [1] * 30
        self.outputs = [types.SimpleNamespace(text="2 + 3 = 5. The answer is 5.", finish_reason="stop",
                                              token_ids=[7] * tokens) for _ in range(n)]  # fmt: skip


class _LLM:
    """vLLM's LLM as far as check (a) uses it: each sample is (seed % 5 + 3) tokens long."""

    def __init__(self, model: str, **_: object) -> None:
        self.seen: list[str] = []

    def chat(self, conversations, sampling_params, use_tqdm=False):
        return [_Output(p.n, p.seed % 5 + 3) for p in sampling_params]

    def generate(self, prompts, sampling_params, use_tqdm=False):
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        self.seen += prompts
        return [_Output(p.n, p.seed % 5 + 3) for p in params]

    def reset_prefix_cache(self) -> None:
        pass

    def get_tokenizer(self):
        def template(messages, tokenize, add_generation_prompt):
            return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

        return types.SimpleNamespace(apply_chat_template=template)


def _params(n=1, temperature=1.0, top_p=1.0, max_tokens=16, seed=0):
    return types.SimpleNamespace(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)


def test_build_check_on_a_stand_in_vllm(tmp_path, monkeypatch):
    """Check (a)'s plumbing: the build runs on the engine, the other side gets the very requests the build
    made, and both count the same tokens."""
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=_LLM, SamplingParams=_params,
                                                                   __version__="stand-in"))  # fmt: skip
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    args = gpu_check.parse_args([str(tmp_path / "out"), "--model", str(tmp_path / "model"), "--prompts", "6",
                                 "--samples", "2"])  # fmt: skip
    args.out.mkdir()
    figures = gpu_check.build_figures(args)
    assert figures["requests"] == 6 and figures["samples"] == 12 and figures["rows"] == 12
    assert figures["hubtool_tokens"] == figures["vllm_tokens"] >= 12 * 3 and figures["ratio"] > 0
    assert (Path(figures["run"]) / "manifest.json").is_file()
