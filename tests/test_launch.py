"""`hubtool train --print-launch NODES GPUS`: the printed commands, pinned, and read back by accelerate's own
launch parser (nothing is launched: there is no GPU here, let alone a cluster)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tests.assertions import raises_one_line
from toolkit.cli import main
from toolkit.training.launch import CONFIGS, config_name, launch_command, print_launch

ROOT = Path(__file__).resolve().parent.parent
ACCELERATE = ROOT / "recipes" / "accelerate"
FULL = ["cot/llama-8b-full", "--set", "dataset_name=me/cot"]

SINGLE_GPU = "hubtool train cot/llama-8b-full --set dataset_name=me/cot\n"
ONE_NODE = (
    "accelerate launch --config_file recipes/accelerate/zero3.yaml --num_processes 8 -m toolkit.train "
    "cot/llama-8b-full --set dataset_name=me/cot\n"
)
FOUR_NODES = """\
#!/bin/bash
#SBATCH --job-name=hubtool-train
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --exclusive
# 4 nodes x 8 GPUs: srun starts one `accelerate launch` per node, which starts 8 processes there.
# Submit it from the folder the relative paths below are relative to; every node needs hubtool
# installed and this folder (recipe, config, dataset, output) on a shared filesystem.
set -euo pipefail
# The first node of the job hosts the rendezvous (a hostname does for --main_process_ip).
MAIN_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)  # not head: under pipefail its early exit fails the job
export MAIN_HOST
srun bash -c 'accelerate launch --config_file recipes/accelerate/zero3.yaml --num_machines 4 --num_processes 32 \
--machine_rank "$SLURM_NODEID" --main_process_ip "$MAIN_HOST" --main_process_port 29500 -m toolkit.train \
cot/llama-8b-full --set dataset_name=me/cot'
"""


def printed(*args: str) -> str:
    result = CliRunner().invoke(main, ["train", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(autouse=True)
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # config paths are printed relative to the folder the command runs in


@pytest.mark.parametrize(("shape", "expected"), [(("1", "1"), SINGLE_GPU), (("1", "8"), ONE_NODE),
                                                 (("4", "8"), FOUR_NODES)])  # fmt: skip
def test_printed_commands_are_pinned(shape, expected):
    assert printed(*FULL, "--print-launch", *shape) == expected


@pytest.mark.parametrize("config", sorted(CONFIGS.values()))
def test_every_accelerate_config_loads_with_accelerates_loader(config):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    loaded = load_config_from_file(str(ACCELERATE / config))  # raises on a key accelerate does not know
    assert isinstance(loaded, ClusterConfig) and loaded.mixed_precision == "bf16" and not loaded.use_cpu
    expected = {"ddp.yaml": "MULTI_GPU", "zero3.yaml": "DEEPSPEED", "fsdp2.yaml": "FSDP"}[config]
    assert loaded.distributed_type == expected
    if config == "fsdp2.yaml":
        assert loaded.fsdp_config["fsdp_version"] == 2
        # transformers refuses FSDP activation checkpointing beside the recipes' gradient_checkpointing
        assert loaded.fsdp_config["fsdp_activation_checkpointing"] is False


def test_lora_and_qlora_recipes_get_ddp_full_ones_zero3():
    recipes = sorted(p for p in (ROOT / "recipes").glob("*/*.yaml") if p.parent.name != "accelerate")
    for path in recipes:
        keys = yaml.safe_load(path.read_text())
        if keys.get("use_cpu"):
            continue  # CPU recipes: refused, see below
        name = f"{path.parent.name}/{path.stem}"
        text = print_launch(1, 8, name)
        wanted = "ddp.yaml" if keys.get("use_peft") else "zero3.yaml"
        assert f"--config_file recipes/accelerate/{wanted} " in text, name
        assert path.stem.endswith("-full") == (wanted == "zero3.yaml"), name
    assert config_name(True) == "ddp" and config_name(False) == "zero3"


def test_the_printed_config_file_exists(tmp_path, monkeypatch):
    for shape in ((1, 8), (4, 8)):
        for recipe in ("cot/llama-8b-full", "cot/llama-8b-qlora"):
            words = shlex.split(print_launch(*shape, recipe).splitlines()[-1])
            words = shlex.split(words[3]) if words[0] == "srun" else words  # srun bash -c 'accelerate ...'
            assert (ROOT / words[words.index("--config_file") + 1]).is_file()
    monkeypatch.chdir(tmp_path)  # elsewhere (a wheel install, another folder): an absolute path
    words = shlex.split(print_launch(1, 8, "cot/llama-8b-full"))
    path = Path(words[words.index("--config_file") + 1])
    assert path.is_absolute() and path.is_file()


def _accelerate_plan(words: list[str]):
    """What `accelerate launch WORDS` would start, read by accelerate's own parser and launcher setup."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    assert words[:2] == ["accelerate", "launch"]
    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(words[2:]))
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command
        prepare_deepspeed_cmd_env(args)
    else:
        prepare_multi_gpu_env(args)
    return args


def test_accelerate_reads_the_single_node_command():
    for recipe, deepspeed in (("cot/llama-8b-full", True), ("cot/llama-8b-qlora", False)):
        args = _accelerate_plan(shlex.split(print_launch(1, 8, recipe, sets=["max_steps=5"])))
        assert args.use_deepspeed is deepspeed and args.multi_gpu is not deepspeed
        assert (args.num_processes, args.nproc_per_node, args.num_machines) == (8, "8", 1)
        assert args.module and args.training_script == "toolkit.train"
        assert args.training_script_args == [recipe, "--set", "max_steps=5"]
    fsdp = _accelerate_plan(shlex.split(launch_command(1, 8, "cot/llama-8b-full", use_peft=False, config="fsdp2")))
    assert fsdp.use_fsdp and fsdp.fsdp_version == 2 and fsdp.nproc_per_node == "8"


def test_slurm_script_runs_one_launcher_per_node_with_its_rank(tmp_path):
    """The batch script under stand-in scontrol/srun/accelerate: srun runs its command once per node with
    that node's SLURM_NODEID (as Slurm does); each accelerate launch line is then read by accelerate."""
    bin_dir, log = tmp_path / "bin", tmp_path / "launches"
    bin_dir.mkdir()
    stand_ins = {
        "scontrol": 'printf "gpu-a\\ngpu-b\\ngpu-c\\ngpu-d\\n"',
        "srun": 'for i in 0 1 2 3; do SLURM_NODEID=$i "$@"; done',
        "accelerate": f'printf "%s\\0" "$@" >> {shlex.quote(str(log))}; printf "\\n" >> {shlex.quote(str(log))}',
    }
    for name, body in stand_ins.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    script = tmp_path / "train.sbatch"
    script.write_text(print_launch(4, 8, "cot/llama-8b-full", sets=["dataset_name=me/it's here"]))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu-[a-d]"}
    subprocess.run(["bash", str(script)], check=True, env=env, cwd=ROOT)
    launches = [line.split("\0")[:-1] for line in log.read_text().splitlines()]
    assert len(launches) == 4
    for rank, words in enumerate(launches):
        args = _accelerate_plan(["accelerate", *words])
        assert args.use_deepspeed and args.deepspeed_multinode_launcher == "standard"
        assert (args.num_processes, args.num_machines, args.nproc_per_node, args.nnodes) == (32, 4, "8", "4")
        assert args.node_rank == rank and args.main_process_ip == "gpu-a" and args.main_process_port == 29500
        assert args.training_script_args == ["cot/llama-8b-full", "--set", "dataset_name=me/it's here"]


def test_every_train_option_is_carried():
    text = printed("cot/llama-8b-lora", "--set", "dataset_name=me/cot", "--output-dir", "out/x y", "--merge",
                   "--where", "correct=true", "--trainer", "sft", "--print-launch", "1", "8")  # fmt: skip
    assert text.endswith(
        "-m toolkit.train cot/llama-8b-lora --set dataset_name=me/cot --output-dir 'out/x y' --merge "
        "--where correct=true --trainer sft\n"
    )


@pytest.mark.parametrize(("args", "message"), [
    (["cot/nope"], "recipe cot/nope does not exist, as a file or as a shipped recipe; shipped: cot/llama-8b-full"),
    (["cot/llama-8b-full", "--set", "lora_rr=4"], "--set: unknown key 'lora_rr' (did you mean 'lora_r'?)"),
    (["cot/llama-8b-full", "--set", "max_steps=x"], "--set: max_steps: 'x' is not a valid int"),
    (["cot/llama-8b-full", "--where", "correct"], "--where 'correct' is not COLUMN=VALUE"),
    (["cot/smollm2-135m-lora"], "trains on a CPU (use_cpu: true); for GPUs add --set use_cpu=false --set bf16=true"),
])  # fmt: skip
def test_bad_input_is_one_line(args, message):
    result = CliRunner().invoke(main, ["train", *args, "--print-launch", "1", "8"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.startswith("Error: ") and message in result.output and result.output.count("\n") == 1


def test_a_cpu_recipe_launches_once_told_to_use_the_gpus():
    text = print_launch(1, 8, "cot/smollm2-135m-lora", sets=["use_cpu=false", "bf16=true"])
    assert "--config_file recipes/accelerate/ddp.yaml --num_processes 8" in text


def test_nodes_and_gpus_must_be_positive():
    with raises_one_line(match="at least 1"):
        launch_command(2, 0, "cot/llama-8b-full", use_peft=False)
    result = CliRunner().invoke(main, ["train", *FULL, "--print-launch", "0", "8"])
    assert result.exit_code == 2 and "0 is not in the range x>=1" in result.output


# Evaluation at scale: `hubtool eval --backend vllm --data-parallel N` is lm-eval's data_parallel_size.


def test_data_parallel_reaches_lm_evals_vllm_model_args(tmp_path):
    from toolkit.evaluate.models import model_spec

    (tmp_path / "config.json").write_text("{}")
    assert model_spec(str(tmp_path), "vllm", data_parallel=4).args == {"pretrained": str(tmp_path),
                                                                        "data_parallel_size": 4}  # fmt: skip
    assert model_spec(str(tmp_path), "vllm").args == {"pretrained": str(tmp_path)}  # lm-eval's default, 1
    with raises_one_line(match="--data-parallel is for --backend vllm"):
        model_spec(str(tmp_path), "hf", data_parallel=2)


def test_data_parallel_on_another_backend_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    result = CliRunner().invoke(main, ["eval", "-m", str(tmp_path), "-t", "gsm8k", "--data-parallel", "2",
                                       "-o", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith("Error: --data-parallel is for --backend vllm")
