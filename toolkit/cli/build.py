"""`hubtool build-dataset METHOD` and `hubtool inspect RUN_DIR`.

The METHOD commands are generated from the methods' config dataclasses: one option per field, its
help text and default taken from the field, so the CLI and the config cannot drift apart. Values
are layered as the config module says (defaults < --preset < --config FILE < flags given).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal

import click
from click.core import ParameterSource

from toolkit import api
from toolkit.builders.config import BuildConfig
from toolkit.cli.app import main
from toolkit.rundir import command_line


class MethodGroup(click.Group):
    """The build-dataset group: one subcommand per method, made when asked for (methods import lazily)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from toolkit.methods import methods

        return [m.name for m in methods()]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        from toolkit.errors import UserError
        from toolkit.methods import get_method

        try:
            return method_command(get_method(name))
        except UserError as e:
            raise click.UsageError(str(e), ctx) from None


@main.group("build-dataset", cls=MethodGroup)
def build_dataset() -> None:
    """Build a teacher-derived dataset into a run directory (resumable: re-run the same command).

    Every METHOD takes --config FILE (YAML: option names as keys) and, where the paper's settings are
    known, --preset NAME; flags given on the command line win over both.
    """


def method_command(method) -> click.Command:
    """The click command of one method, generated from its config dataclass."""
    params: list[click.Parameter] = [
        click.Option(["--config", "config_file"], type=click.Path(dir_okay=False), metavar="FILE",
                     help="YAML file of options (keys: the option names below); flags given here win."),
    ]  # fmt: skip
    if method.presets:
        about = "; ".join(f"{name}: {p.about}" for name, p in sorted(method.presets.items()))
        params.append(click.Option(["--preset"], type=click.Choice(sorted(method.presets)),
                                   help=f"The settings of a paper ({about}); flags given here win."))  # fmt: skip
    params.append(click.Option(["--shard"], metavar="I/N",
                               help="Build only shard I of N (0-based: 0/8 .. 7/8) into OUT/shards/, one process "
                                    "per shard (a Slurm job array: --shard $SLURM_ARRAY_TASK_ID/8); then "
                                    "`hubtool merge OUT`."))  # fmt: skip
    params += [
        click.Option(["--engine"], type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="ray: run the build's shards on Ray actors of an existing cluster, then merge "
                          "(`pip install \"hubtool[ray]\"`)."),
        click.Option(["--workers"], type=click.IntRange(min=1), metavar="N",
                     help="--engine ray: Ray actors, each running whole shards (default 1)."),
        click.Option(["--shards"], type=click.IntRange(min=1), metavar="N",
                     help="--engine ray: shards to cut the build into (default 4 per worker, 2 for one worker; "
                          "a resumed run keeps its own)."),
        click.Option(["--ray-address"], metavar="HOST:PORT",
                     help="--engine ray: the cluster to join (default: RAY_ADDRESS, or the one `ray start` made here)."),
    ]  # fmt: skip
    hints = typing.get_type_hints(method.config)
    shared = {f.name for f in dataclasses.fields(BuildConfig)}
    own = [f for f in dataclasses.fields(method.config) if f.name not in shared]  # the method's first
    params += [config_option(f, hints[f.name]) for f in own + list(dataclasses.fields(BuildConfig))]

    def callback(config_file: str | None = None, preset: str | None = None, shard: str | None = None,
                 engine: str = "local", workers: int | None = None, shards: int | None = None,
                 ray_address: str | None = None, **values: Any) -> None:  # fmt: skip
        ctx = click.get_current_context()
        given = {k: v for k, v in values.items() if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
        run_build(method, given, config_file, preset, shard,
                  {"engine": engine, "workers": workers, "shards": shards, "ray_address": ray_address})

    return click.Command(method.name, params=params, callback=callback, help=method.help, short_help=method.summary)


def config_option(f: dataclasses.Field, hint: Any) -> click.Option:
    """A click option for a config field: its type, choices, help and (shown) default."""
    name = "--" + f.name.replace("_", "-")
    base = _base(hint)
    default = None if f.default is dataclasses.MISSING else f.default
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    help_text = f.metadata.get("help", "")
    if required:
        help_text += "  [required]"
    elif default is not None and default != ():
        help_text += f"  [default: {_show(default)}]"
    opts: dict[str, Any] = {"help": help_text, "default": None}
    if f.metadata.get("metavar"):
        opts["metavar"] = f.metadata["metavar"]
    if base is bool:
        return click.Option([f"{name}/--no-{f.name.replace('_', '-')}"], **opts)
    if typing.get_origin(base) is Literal:
        opts["type"] = click.Choice([str(a) for a in typing.get_args(base)])
    elif typing.get_origin(base) is tuple:
        opts.update(multiple=True, type=typing.get_args(base)[0])
        opts["default"] = None
    else:
        opts["type"] = {int: click.INT, float: click.FLOAT, str: click.STRING}.get(base, click.STRING)
    return click.Option([name], **opts)


def _base(hint: Any) -> Any:
    """`X | None` -> X."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def run_build(method, flags: dict[str, Any], config_file: str | None, preset: str | None,
              shard: str | None = None, engine: dict[str, Any] | None = None) -> None:  # fmt: skip
    result = api.build(method, config_file=config_file, preset=preset, command=command_line(), shard=shard,
                       **(engine or {}), **flags)  # fmt: skip
    click.echo(result.summary())
    if shard is not None:
        return  # a shard's rows are a part: `hubtool merge` makes the build
    if not result.rows:
        click.echo(
            f"warning: no rows kept, so there is nothing to train on; `hubtool inspect {result.run_dir}` shows why "
            "(counts, failures); the cache keeps what was generated, so a re-run with changed options is cheap",
            err=True,
        )


@main.command("merge")
@click.argument("run_dir", type=click.Path())
def merge(run_dir: str) -> None:
    """Merge a sharded build (every `build-dataset ... --shard I/N` done) into RUN_DIR: its rows, manifest
    and card, those of the same build run in one process; no teacher call is made."""
    result = api.merge(run_dir)
    click.echo(result.summary())


@main.command("inspect")
@click.argument("run_dir", type=click.Path())
@click.option("-n", "--rows", "n_rows", default=3, show_default=True, help="Rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.option("--tree", metavar="ID", help="Print a search tree of the build (trees/ID.json; 'first' for the first).")
def inspect(run_dir: str, n_rows: int, as_json: bool, tree: str | None) -> None:
    """Stats and a few rows of a run directory."""
    from toolkit.inspect import describe_run, describe_tree

    if tree:
        click.echo(describe_tree(run_dir, tree))
        return
    if as_json:
        from toolkit.rundir import read_manifest

        click.echo(json.dumps(read_manifest(run_dir).to_dict(), indent=2))
        return
    click.echo(describe_run(run_dir, n_rows=n_rows))
