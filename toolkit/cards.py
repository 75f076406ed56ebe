"""Dataset cards that tell how the data was made, rendered from `dataset_cards/`.

A card is the Hub's own `DatasetCardData` (metadata checked offline against the values the Hub
allows, as they ship with `datasets`) followed by a Markdown body rendered from the method's
Jinja template (`sft.md.jinja`, `preference.md.jinja`, ...; shared parts are includes). Everything
comes from the run directory: the manifest and the first rows of the data file. The card holds
nothing that changes between two renders of the same build, so a re-push of an unchanged build
uploads nothing.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.card_quality import quality
from toolkit.errors import UserError
from toolkit.manifest import Manifest, ModelInfo
from toolkit.public_paths import public_model, public_spec, scrub, scrub_command, scrub_value
from toolkit.redact import redact
from toolkit.resources import resource_dir
from toolkit.rundir import atomic_write, data_file, read_manifest
from toolkit.teachers.models import ALIASES

if TYPE_CHECKING:  # only a type here: cards sit below the engine, whose callers pass the Method in
    from toolkit.builders.method import Method

CARDS_DIR = resource_dir("dataset_cards")
# Metadata keys hubtool writes; a merge overwrites these and keeps every other key. `dataset_info`
# describes the old data files, so it is dropped rather than kept stale.
OWNED_KEYS = ("pretty_name", "license", "language", "annotations_creators", "language_creators",
              "multilinguality", "task_categories", "size_categories", "source_datasets", "tags", "configs",
              "dataset_info")  # fmt: skip
TASK_CATEGORIES = {"sft": ["text-generation", "question-answering"], "preference": ["text-generation"]}
SIZE_BOUNDS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
               (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))  # fmt: skip
SAMPLE_ROWS = 3
SAMPLE_CHARS = 600


def write_card(run_dir: str | Path, method: Method | None) -> None:
    """Write RUN/README.md (see `render_card`); the build calls this when it finishes."""
    run_dir = Path(run_dir)
    atomic_write(run_dir / "README.md", render_card(run_dir, method).encode())


def render_card(run_dir: str | Path, method: Method | None, repo_id: str | None = None, license: str | None = None,
                existing: str | None = None) -> str:  # fmt: skip
    """The card text for a build of `method` (the caller's lookup of the manifest's method; None for one
    this hubtool does not know, a newer build: the generic card of its kind). `repo_id` names the
    published dataset (else the run directory); `license` overrides the derived one; `existing` is a
    card already published there, whose metadata keys hubtool does not own are kept."""
    from huggingface_hub import DatasetCard

    run_dir = Path(run_dir)
    manifest = public_manifest(read_manifest(run_dir), run_dir)  # a card names no folder of this machine
    n_rows, samples, kept_tokens = _read_rows(data_file(run_dir))
    name = repo_id or scrub(str(run_dir))
    lic = license_info(manifest, license)
    data = merge_metadata(card_data(manifest, method, n_rows, repo_id or run_dir.name, lic["value"]), existing)
    context = card_context(manifest, method, name, n_rows, samples, kept_tokens, lic)
    context["quality"] = quality(data_file(run_dir), manifest.counts, manifest.stats,
                                 reasoning=method.reasoning if method else True,
                                 warnings=method.card_warnings if method else None, models=manifest.models)  # fmt: skip
    body = _template(card_template(manifest, method)).render(**context)
    # The card quotes the command, the config and sample rows: never a credential among them.
    return redact(str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n")))


def check_card_template(method: Method) -> None:
    """Load and compile a method's card template now, so a missing or broken one stops a build
    before any model work rather than after it."""
    import jinja2

    template = method.card_template
    try:
        _template(template)
    except jinja2.TemplateNotFound as e:
        where = Path(template).parent if isinstance(template, Path) else CARDS_DIR
        raise UserError(f"card template {e.name} for method {method.name!r} not found in {where}") from None
    except jinja2.TemplateSyntaxError as e:
        raise UserError(f"card template {e.name} line {e.lineno}: {e.message}") from None


def card_template(manifest: Manifest, method: Method | None) -> str | Path:
    """The method's card template: a name in dataset_cards/, or a Path to its own file."""
    return method.card_template if method else f"{manifest.row_format.kind or 'sft'}.md.jinja"


def _template(template: str | Path):
    """A card template by name in dataset_cards/, or a method's own file, which may extend or include
    dataset_cards/'s templates (its folder is searched first, then dataset_cards/)."""
    if isinstance(template, Path):
        return _env(str(template.parent)).get_template(template.name)
    return _env().get_template(template)


def size_category(n: int) -> str:
    return next((label for bound, label in SIZE_BOUNDS if n < bound), "n>1T")


# -- metadata ---------------------------------------------------------------------------------
def card_data(manifest: Manifest, method: Method | None, n_rows: int, name: str, license: str):
    """The card's metadata as the Hub's own type, checked against the Hub's allowed values."""
    from huggingface_hub import DatasetCardData

    tags = ["synthetic", "distillation", "hubtool", manifest.method, *(method.paper.tags if method and method.paper else ())]
    data = DatasetCardData(
        pretty_name=pretty_name(manifest, method, name), license=license, language=["en"],
        annotations_creators=["machine-generated"], language_creators=["machine-generated"],
        multilinguality=["monolingual"], task_categories=TASK_CATEGORIES.get(manifest.row_format.kind, ["text-generation"]),
        size_categories=[size_category(n_rows)], source_datasets=source_datasets(manifest.source),
        tags=list(dict.fromkeys(tags)),
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": manifest.data_file}]}],
    )  # fmt: skip
    check_card_data(data)
    return data


def check_card_data(data: Any) -> None:
    """Every controlled value is one the Hub accepts (the lists ship with `datasets`)."""
    allowed = hub_vocabulary()
    checks = (("size_categories", data.size_categories, allowed["size"]),
              ("task_categories", data.task_categories, allowed["tasks"]),
              ("annotations_creators", data.annotations_creators, allowed["creators"]),
              ("language", data.language, allowed["languages"]))  # fmt: skip
    for key, values, known in checks:
        bad = [v for v in values or [] if v not in known]
        if bad:
            raise ValueError(f"card metadata {key}: {bad} not among the Hub's values")  # a bug, not user input


@cache
def hub_vocabulary() -> dict[str, set[str]]:
    from datasets.utils import metadata
    from datasets.utils.resources import __file__ as resources

    folder = Path(resources).parent
    creators = json.loads((folder / "creators.json").read_text())
    return {"size": set(json.loads((folder / "size_categories.json").read_text())),
            "tasks": set(metadata.known_task_ids), "creators": set(creators["annotations"]),
            "languages": set(json.loads((folder / "languages.json").read_text()))}  # fmt: skip


def pretty_name(manifest: Manifest, method: Method | None, name: str) -> str:
    """"Smol Arith Cot: Instruction-tuning-CoT data from reasoning-gym basic_arithmetic"."""
    what = method.paper.name if method and method.paper else manifest.method
    title = re.sub(r"[-_]+", " ", name.split("/")[-1]).strip().title() or "Dataset"
    return f"{title}: {what} data from {source_description(manifest.source)}"


def source_datasets(source: dict[str, Any]) -> list[str]:
    """Hub ids of the source (the Hub links them); "original" for generated or local problems."""
    return [source["hub_id"]] if source.get("hub_id") else ["original"]


def merge_metadata(ours: Any, existing: str | None) -> Any:
    """Our keys overwrite; every other key of `existing` is kept. Tags are a union, so tags someone
    added on the Hub survive a re-push."""
    from huggingface_hub import DatasetCardData

    old = parse_metadata(existing) if existing else {}
    merged = ours.to_dict()
    merged["tags"] = [*ours.tags, *[t for t in old.get("tags") or [] if t not in ours.tags]]
    merged.update({k: v for k, v in old.items() if k not in OWNED_KEYS})
    return DatasetCardData(**merged)


def parse_metadata(card_text: str) -> dict[str, Any]:
    """A card's YAML metadata as a dict ({} when it has none); invalid YAML is a UserError."""
    import yaml
    from huggingface_hub import DatasetCard

    if not re.match(r"^---\s*\n", card_text):
        return {}
    try:
        return DatasetCard(card_text, ignore_metadata_errors=True).data.to_dict()
    except (ValueError, yaml.YAMLError) as e:
        raise UserError(f"the existing card's YAML metadata is invalid ({str(e).splitlines()[0]}); fix it first") from None


def source_description(source: dict[str, Any]) -> str:
    """The Hub id of the source benchmark, or a description of a generated / local source."""
    if source.get("hub_id"):
        return source["hub_id"]
    spec = source.get("spec") or source.get("name") or "unknown"
    kind = str(source.get("kind") or spec.split(":")[0])
    if kind.startswith("gym"):
        return f"reasoning-gym {source.get('name') or spec.removeprefix('gym:')}"
    if kind == "dataset":
        return f"the dataset {source.get('name') or spec.removeprefix('dataset:')}"
    return f"local file {source.get('name') or spec.removeprefix('file:')}"


def license_info(manifest: Manifest, override: str | None) -> dict[str, str | None]:
    """The declared license, and where the data's and the teacher's terms come from."""
    source = manifest.source.get("license")
    main = manifest.main_model
    alias = ALIASES.get(main.model) if main else None
    teacher = alias.license if alias else None
    value = override or source or teacher or "unknown"
    return {"value": value.lower(), "source": source, "teacher": teacher, "override": override}


# -- no path of this machine ------------------------------------------------------------------
PUBLIC_KEYS = ("config", "source", "stats", "models", "teacher", "teacher_info")  # what may hold a path


def public_manifest_json(text: str, run_dir: Path) -> str:
    """manifest.json as it is published: the same JSON with the command, config, source, models
    and stats in public form (see public_manifest); other keys, and any it does not know, as they are."""
    data = json.loads(text)
    if not isinstance(data, dict):
        return text
    for m in data.get("models") or []:  # before the paths in them are cut to their last part
        if isinstance(m, dict) and isinstance(m.get("model"), str):
            m["model"], m["spec"] = public_model(m["model"]), public_spec(str(m.get("spec", "")), run_dir)
    if isinstance(data.get("teacher"), str):
        data["teacher"] = public_spec(data["teacher"], run_dir)
    for key in PUBLIC_KEYS:
        if key in data:
            data[key] = scrub_value(data[key], run_dir)
    if isinstance(data.get("command"), str):
        data["command"] = scrub_command(data["command"], run_dir)
    return json.dumps(data, indent=2, ensure_ascii=False)


def public_manifest(manifest: Manifest, run_dir: Path) -> Manifest:
    """The manifest as a card may show it: the command, config, source, models and stats without
    an absolute path of this machine (toolkit.public_paths); local models as "a local model"."""
    import dataclasses

    def model(m: ModelInfo) -> ModelInfo:
        return dataclasses.replace(m, model=public_model(m.model), spec=public_spec(m.spec, run_dir),
                                   served=scrub(m.served, run_dir), weights=scrub_value(m.weights, run_dir))  # fmt: skip

    models = [model(m) for m in manifest.models]
    teacher = public_spec(manifest.teacher, run_dir)
    return dataclasses.replace(
        manifest, command=scrub_command(manifest.command, run_dir), config=scrub_value(manifest.config, run_dir),
        source=scrub_value(manifest.source, run_dir), stats=scrub_value(manifest.stats, run_dir), models=models,
        teacher=teacher,
    )  # fmt: skip


def card_context(manifest: Manifest, method: Method | None, name: str, n_rows: int, samples: list[dict],
                 kept_tokens: int | None, lic: dict) -> dict[str, Any]:  # fmt: skip
    config, counts = _Loose(manifest.config), _Counts(manifest.counts)
    n_samples = counts["samples"]
    main = manifest.main_model
    models = [{**m.__dict__, "identity": m.identity, "origin": ALIASES[m.model].original if m.model in ALIASES else None}
              for m in manifest.models]  # fmt: skip
    return {
        "kind": manifest.row_format.kind, "name": name, "n_rows": n_rows, "method": manifest.method,
        "paper": method.paper if method else None, "source": _Loose(manifest.source),
        "source_desc": source_description(manifest.source), "models": models,
        "source_sha256": manifest.source_sha256,
        "teacher": _Loose(models[0] if models else {"model": manifest.teacher}),
        "teacher_identity": main.identity if main else manifest.teacher,
        "role": (main.role if main else "teacher").capitalize(), "templates": manifest.prompt_templates,
        "sampling": _Loose({k: manifest.config.get(k) for k in ("temperature", "top_p", "max_new_tokens", "seed")}),
        "config": config, "counts": counts, "stats": _Loose(manifest.stats), "preset": manifest.preset,
        "preset_values": manifest.preset_values, "preset_overrides": manifest.preset_overrides,
        "accuracy": counts["correct"] / n_samples if n_samples else None,
        "dropped": max(n_samples - counts["kept"], 0), "usage": {k: _Counts(v) for k, v in manifest.usage.items()},
        "kept_tokens": kept_tokens, "versions": manifest.versions, "command": manifest.command,
        "finished_at": manifest.finished_at, "elapsed_s": manifest.elapsed_s, "row_format": manifest.row_format,
        "recipe": manifest.row_format.recipe, "samples": samples, "license": lic,
        "hubtool_version": manifest.hubtool_version,
    }  # fmt: skip


class _Loose(dict):
    """A manifest entry whose missing keys read as None in templates (configs vary by method)."""

    def __missing__(self, key: str) -> Any:
        return None


class _Counts(dict):
    """Counts whose missing keys read as 0."""

    def __missing__(self, key: str) -> int:
        return 0


def _read_rows(path: Path) -> tuple[int, list[dict], int | None]:
    """Row count, the first rows (long texts truncated) and the completion tokens of all rows
    (None when the rows carry no `num_tokens`)."""
    import pyarrow.parquet as pq  # ParquetFile, not read_table: no pyarrow.dataset import (~1 s)

    if not path.exists():
        raise UserError(f"{path} is missing; the build did not finish — re-run its command")
    pf = pq.ParquetFile(path)
    first = next(pf.iter_batches(batch_size=SAMPLE_ROWS), None)
    rows = [_truncate(r) for r in first.to_pylist()] if first is not None else []
    tokens = None
    if "num_tokens" in pf.schema_arrow.names:
        tokens = sum(t or 0 for t in pf.read(columns=["num_tokens"]).column(0).to_pylist())
    return pf.metadata.num_rows, rows, tokens


def _truncate(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= SAMPLE_CHARS else value[:SAMPLE_CHARS] + " […]"
    if isinstance(value, list):
        return [_truncate(v) for v in value]
    if isinstance(value, dict):
        return {k: _truncate(v) for k, v in value.items()}
    return value


def _fence(text: str, lang: str = "") -> str:
    """A Markdown code block whose fence is longer than any backtick run inside the text."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


@cache
def _env(own: str | None = None):
    """The card templates' environment: dataset_cards/, after `own` (a method's folder) when given."""
    import jinja2

    if not CARDS_DIR.is_dir():
        raise UserError(f"card templates not found at {CARDS_DIR}; reinstall hubtool")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*([own] if own else []), str(CARDS_DIR)]), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
    )  # fmt: skip
    env.filters["fence"] = _fence
    env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{v:.1%}"
    return env
