"""The command that trains a recipe on NODES machines of GPUS GPUs each (`hubtool train --print-launch`).

    1 x 1:  hubtool train RECIPE ...                                   (one process needs no launcher)
    1 x G:  accelerate launch --config_file CONFIG --num_processes G -m toolkit.train RECIPE ...
    N x G:  a Slurm batch script: one task per node, each task one `accelerate launch` with
            --num_machines N --num_processes N*G --machine_rank $SLURM_NODEID --main_process_ip (first node)

`print_launch` checks the recipe and the overrides first (names, keys and value types, as `hubtool train`
does before any model loads), so a typo shows here, not on the cluster.

The config comes from the recipe: a LoRA / QLoRA recipe (`use_peft: true`) keeps a whole model on
every GPU (`ddp.yaml`); a full fine-tune shards it (`zero3.yaml`, DeepSpeed ZeRO-3, as the `*-full`
recipes say; `fsdp2.yaml` is the same job with nothing but torch). Nothing here runs anything: the
functions read the recipe and return text.

It is an option of `hubtool train`, not a command of its own, because the printed command is that
command under a launcher: it carries train's own arguments (RECIPE, --set, --output-dir, --merge,
--where, --trainer), checked by the same code.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from toolkit.errors import UserError
from toolkit.resources import resource_dir
from toolkit.training.data import parse_where
from toolkit.training.recipe import check_recipe

CONFIGS: dict[str, str] = {"ddp": "ddp.yaml", "zero3": "zero3.yaml", "fsdp2": "fsdp2.yaml"}
PORT = 29500  # torch.distributed's usual rendezvous port on the first node


def config_name(use_peft: bool) -> str:
    """ddp for an adapter (a full model copy per GPU is small enough), zero3 for a full fine-tune."""
    return "ddp" if use_peft else "zero3"


def config_path(name: str, cwd: Path | None = None) -> str:
    """A shipped accelerate config as a path: relative to `cwd` when it lies under it (a checkout), else
    absolute (a wheel install); on a cluster it must be readable on every node."""
    if name not in CONFIGS:
        raise UserError(f"unknown accelerate config {name!r}; shipped: {', '.join(CONFIGS)}")
    path = resource_dir("recipes") / "accelerate" / CONFIGS[name]
    cwd = (cwd or Path.cwd()).resolve()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


def train_args(
    recipe: str, *, sets: Sequence[str] = (), output_dir: str | None = None, merge: bool = False,
    where: Sequence[str] = (), trainer: str | None = None,
) -> list[str]:
    """The arguments of `hubtool train` / `python -m toolkit.train`, as given."""
    args = [recipe]
    for item in sets:
        args += ["--set", item]
    if output_dir is not None:
        args += ["--output-dir", str(output_dir)]
    if merge:
        args.append("--merge")
    for item in where:
        args += ["--where", item]
    if trainer is not None:
        args += ["--trainer", trainer]
    return args


def launch_command(
    nodes: int, gpus: int, recipe: str, *, use_peft: bool, uses_cpu: bool = False, args: Sequence[str] = (),
    config: str | None = None, cwd: Path | None = None, job_name: str = "hubtool-train",
) -> str:
    """The command (or, on several nodes, the Slurm batch script) that trains `recipe` on nodes x gpus.
    `args` are the `hubtool train` arguments after the recipe; `use_peft` and `uses_cpu` are the recipe's."""
    if nodes < 1 or gpus < 1:
        raise UserError(f"--print-launch {nodes} {gpus}: NODES and GPUS must be at least 1")
    if uses_cpu:
        raise UserError(
            f"recipe {recipe} trains on a CPU (use_cpu: true); for GPUs add --set use_cpu=false --set bf16=true"
        )
    train = [recipe, *args]
    if nodes == 1 and gpus == 1:
        return shlex.join(["hubtool", "train", *train])
    path = config_path(config or config_name(use_peft), cwd)
    module = ["-m", "toolkit.train", *train]
    if nodes == 1:
        return shlex.join(["accelerate", "launch", "--config_file", path, "--num_processes", str(gpus), *module])
    launcher = shlex.join([
        "accelerate", "launch", "--config_file", path, "--num_machines", str(nodes),
        "--num_processes", str(nodes * gpus),
    ])
    # $SLURM_NODEID and $MAIN_HOST stay unexpanded until the bash that srun starts on each node reads them
    per_node = f'{launcher} --machine_rank "$SLURM_NODEID" --main_process_ip "$MAIN_HOST" --main_process_port {PORT} ' \
               f"{shlex.join(module)}"  # fmt: skip
    return "\n".join([
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={gpus}",
        "#SBATCH --exclusive",
        f"# {nodes} nodes x {gpus} GPUs: srun starts one `accelerate launch` per node, which starts {gpus} "
        "processes there.",
        "# Submit it from the folder the relative paths below are relative to; every node needs hubtool",
        "# installed and this folder (recipe, config, dataset, output) on a shared filesystem.",
        "set -euo pipefail",
        "# The first node of the job hosts the rendezvous (a hostname does for --main_process_ip).",
        'MAIN_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)  # not head: under pipefail its early exit fails the job',
        "export MAIN_HOST",
        f"srun bash -c {shlex.quote(per_node)}",
    ])


def print_launch(
    nodes: int, gpus: int, recipe: str, *, sets: Sequence[str] = (), output_dir: str | None = None,
    merge: bool = False, where: Sequence[str] = (), trainer: str | None = None, cwd: Path | None = None,
) -> str:
    """`hubtool train RECIPE ... --print-launch NODES GPUS`: check the recipe as `hubtool train` would,
    then the command for nodes x gpus, carrying the same arguments."""
    parse_where(where)
    _path, keys = check_recipe(recipe, sets, trainer=trainer)
    args = train_args(recipe, sets=sets, output_dir=output_dir, merge=merge, where=where, trainer=trainer)[1:]
    return launch_command(nodes, gpus, recipe, use_peft=_true(keys.get("use_peft")),
                          uses_cpu=_true(keys.get("use_cpu")), args=args, cwd=cwd)  # fmt: skip


def _true(value: object) -> bool:
    """A YAML boolean, or a `--set` string as TRL's parser reads it."""
    return value is True or str(value).strip().lower() in ("true", "yes", "1", "t", "y")
