"""Dataset cards that tell how the data was made, rendered from `dataset_cards/`.

A card is YAML metadata the Hub understands (built here as a dict, so it is always valid YAML and
can be merged with a card already on the Hub) followed by a Markdown body rendered from the Jinja
template of the dataset's kind (`sft.md.jinja`, `preference.md.jinja`; shared parts are includes).
Everything comes from the run directory: manifest.json and the first rows of the data file.
The card holds nothing that changes between two renders of the same build, so a re-push of an
unchanged build uploads nothing.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from toolkit.errors import UserError
from toolkit.rundir import atomic_write, data_file, read_manifest

CARDS_DIR = Path(__file__).resolve().parent.parent / "dataset_cards"
# Metadata keys hubtool writes; a merge overwrites these and keeps every other key. `dataset_info`
# describes the old data files, so it is dropped rather than kept stale.
OWNED_KEYS = ("pretty_name", "license", "language", "task_categories", "size_categories", "source_datasets",
              "tags", "configs", "dataset_info")  # fmt: skip
TASK_CATEGORIES = {"sft": ["text-generation", "question-answering"], "preference": ["text-generation"]}
SIZE_BOUNDS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
               (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))  # fmt: skip
SAMPLE_ROWS = 3
SAMPLE_CHARS = 600


def write_card(run_dir: str | Path) -> None:
    """Write RUN/README.md; the build calls this when it finishes."""
    run_dir = Path(run_dir)
    atomic_write(run_dir / "README.md", render_card(run_dir).encode())


def render_card(run_dir: str | Path, repo_id: str | None = None, license: str | None = None,
                existing: str | None = None) -> str:  # fmt: skip
    """The card text for a build. `repo_id` names the published dataset (else the run directory);
    `license` overrides the derived one; `existing` is a card already published there, whose
    metadata keys hubtool does not own are kept."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    n_rows, samples, kept_tokens = _read_rows(data_file(run_dir))
    name = repo_id or str(run_dir)
    lic = license_info(manifest, license)
    meta = merge_metadata(card_metadata(manifest, n_rows, repo_id or run_dir.name, lic["value"]), existing)
    context = card_context(manifest, name, n_rows, samples, kept_tokens, lic)
    body = _env().get_template(f"{context['kind']}.md.jinja").render(**context)
    return f"---\n{_dump_yaml(meta)}---\n\n{body.strip()}\n"


def row_kind(manifest: dict[str, Any]) -> str:
    kind = (manifest.get("row_format") or {}).get("kind") or "sft"
    if not (CARDS_DIR / f"{kind}.md.jinja").exists():
        known = ", ".join(card_kinds())
        raise UserError(f"no card template for dataset kind {kind!r} in {CARDS_DIR}; known: {known}")
    return kind


def card_kinds() -> list[str]:
    return sorted(p.name.removesuffix(".md.jinja") for p in CARDS_DIR.glob("[!_]*.md.jinja"))


def size_category(n: int) -> str:
    return next((label for bound, label in SIZE_BOUNDS if n < bound), "n>1T")


# -- metadata ---------------------------------------------------------------------------------
def card_metadata(manifest: dict[str, Any], n_rows: int, name: str, license: str) -> dict[str, Any]:
    method = manifest.get("method", "unknown")
    extra_tags = (methods().get(method) or {}).get("tags", [])
    return {
        "pretty_name": name.split("/")[-1],
        "license": license,
        "language": ["en"],
        "task_categories": TASK_CATEGORIES.get(row_kind(manifest), ["text-generation"]),
        "size_categories": [size_category(n_rows)],
        "source_datasets": [source_description(manifest.get("source") or {})],
        "tags": list(dict.fromkeys(["synthetic", "distillation", "hubtool", method, *extra_tags])),
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": manifest["data_file"]}]}],
    }


def merge_metadata(ours: dict[str, Any], existing: str | None) -> dict[str, Any]:
    """Our keys (in our order) overwrite; every other key of `existing` is kept after them.
    Tags are a union, so tags someone added on the Hub survive a re-push."""
    old = parse_metadata(existing) if existing else {}
    merged = dict(ours)
    extra_tags = [t for t in old.get("tags") or [] if t not in ours["tags"]]
    merged["tags"] = [*ours["tags"], *extra_tags]
    merged.update({k: v for k, v in old.items() if k not in OWNED_KEYS})
    return merged


def parse_metadata(card_text: str) -> dict[str, Any]:
    import yaml

    m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", card_text, re.S)
    if not m:
        return {}
    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError as e:
        raise UserError(
            f"the existing card's YAML metadata is invalid ({str(e).splitlines()[0]}); fix it first"
        ) from None
    return data if isinstance(data, dict) else {}


def source_description(source: dict[str, Any]) -> str:
    """The Hub id of the source benchmark, or a description of a generated / local source."""
    if source.get("hub_id"):
        return source["hub_id"]
    spec = source.get("spec") or source.get("name") or "unknown"
    kind = str(source.get("kind") or spec.split(":")[0])
    if kind.startswith("gym"):
        return f"reasoning-gym {source.get('name') or spec.removeprefix('gym:')} (procedurally generated)"
    return f"local file {source.get('name') or spec.removeprefix('file:')}"


def license_info(manifest: dict[str, Any], override: str | None) -> dict[str, str | None]:
    """The declared license, and where the data's and the teacher's terms come from."""
    from toolkit.teachers.models import ALIASES

    source = (manifest.get("source") or {}).get("license")
    alias = ALIASES.get(_teacher_model(manifest))
    teacher = alias.license if alias else None
    value = override or source or teacher or "unknown"
    return {"value": value.lower(), "source": source, "teacher": teacher, "override": override}


# -- the body ---------------------------------------------------------------------------------
def card_context(manifest: dict[str, Any], name: str, n_rows: int, samples: list[dict], kept_tokens: int | None,
                 lic: dict) -> dict[str, Any]:  # fmt: skip
    from toolkit import __version__

    method = manifest.get("method", "unknown")
    config = _Loose(manifest.get("config") or {})
    counts = _Counts(manifest.get("counts") or {})
    n_samples = counts.get("samples", 0)
    recipe = (manifest.get("row_format") or {}).get("recipe")
    return {
        "kind": row_kind(manifest), "name": name, "n_rows": n_rows, "method": method,
        "method_info": methods().get(method), "source": _Loose(manifest.get("source") or {}),
        "source_desc": source_description(manifest.get("source") or {}),
        "teacher": _Loose(manifest.get("teacher_info") or {"model": _teacher_model(manifest)}),
        "teacher_identity": manifest.get("teacher_identity") or manifest.get("teacher"),
        "teacher_origin": _teacher_origin(manifest),
        "template": manifest.get("prompt_template"), "template_name": config.get("template"),
        "sampling": _Loose(config.get("sampling") or {}), "config": config, "counts": counts,
        "accuracy": counts.get("correct", 0) / n_samples if n_samples else None,
        "dropped": max(n_samples - counts.get("kept", 0), 0), "usage": _Counts(manifest.get("usage") or {}),
        "kept_tokens": kept_tokens, "versions": manifest.get("versions") or {}, "command": manifest.get("command"),
        "finished_at": manifest.get("finished_at"), "elapsed_s": manifest.get("elapsed_s"),
        "row_format": _Loose(manifest.get("row_format") or {}), "recipe": recipe, "samples": samples,
        "license": lic, "hubtool_version": manifest.get("hubtool_version", __version__),
    }  # fmt: skip


class _Loose(dict):
    """A manifest entry whose missing keys read as None in templates (manifests vary by method)."""

    def __missing__(self, key: str) -> Any:
        return None


class _Counts(dict):
    """Counts whose missing keys read as 0."""

    def __missing__(self, key: str) -> int:
        return 0


def _teacher_model(manifest: dict[str, Any]) -> str:
    """The model part of the teacher (for the default: the alias `smollm2-135m`)."""
    info = manifest.get("teacher_info") or {}
    return info.get("model") or str(manifest.get("teacher", "")).partition(":")[2]


def _teacher_origin(manifest: dict[str, Any]) -> str | None:
    """The Hub model an embedded teacher alias was made from."""
    from toolkit.teachers.models import ALIASES

    alias = ALIASES.get(_teacher_model(manifest))
    return alias.original if alias else None


@cache
def methods() -> dict[str, dict[str, str]]:
    """Method name -> display name, paper, url and bibtex (dataset_cards/methods.yaml)."""
    import yaml

    return yaml.safe_load((CARDS_DIR / "methods.yaml").read_text())


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


def _dump_yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


@cache
def _env():
    import jinja2

    if not CARDS_DIR.is_dir():
        raise UserError(f"card templates not found at {CARDS_DIR}; reinstall hubtool from its source tree")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(CARDS_DIR)), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
    )  # fmt: skip
    env.filters["fence"] = _fence
    env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{v:.1%}"
    return env
