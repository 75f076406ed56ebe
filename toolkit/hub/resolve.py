"""One name resolver for the CLI, the recipes and the evals.

A name is looked up, in order, as: an existing local directory (a run directory, a registry
folder, any folder `datasets.load_dataset` reads) -> the local registry (`org/name`) -> the Hub.
A `revision` names a Hub branch, tag or commit: it skips the local registry, which keeps one
version per name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import MissingSplitError, UserError
from toolkit.hub import registry
from toolkit.hub.names import is_repo_id
from toolkit.hub.remote import hub_errors, hub_offline
from toolkit.paths import registry_dir
from toolkit.rundir import SHARDS

# Not data: the card, the build's provenance, its failure log.
NOT_DATA = frozenset({"README.md", "manifest.json", "failed.jsonl"})
# Files `datasets.load_dataset(FOLDER)` reads as data (its packaged builders), compressed or not.
DATA_SUFFIXES = (".parquet", ".arrow", ".jsonl", ".json", ".csv", ".tsv", ".txt", ".jsonl.gz", ".json.gz",
                 ".csv.gz")  # fmt: skip


@dataclass(frozen=True, slots=True)
class ResolvedDataset:
    name: str  # as asked for
    path: str  # a local directory, or the Hub repo id
    local: bool
    revision: str | None
    fingerprint: str  # sha256 of the data files (local), or the Hub commit sha


def resolve_dataset(name: str, revision: str | None = None) -> ResolvedDataset:
    """Find `name`: a local directory, the local registry, then the Hub. Raises UserError."""
    path = Path(name).expanduser()
    if path.is_dir():
        if revision:
            raise UserError(f"{name} is a local directory, which has no revisions; drop the revision")
        real = path.resolve()  # a registry link -> its version folder, which outlives the next push
        if not looks_like_dataset(real):  # before hashing: a virtualenv would take minutes
            raise UserError(
                f"{name} holds no dataset (no data files in data/, at its top or one folder down, as "
                f"{', '.join(DATA_SUFFIXES[:4])}); give a run directory, a dataset folder, or an ORG/NAME (see `hubtool ls`)"
            )
        return ResolvedDataset(name, str(real), True, None, fingerprint(real))
    if not is_repo_id(name):
        raise UserError(
            f"no dataset {name!r}: not a directory, and not an ORG/NAME to look up; see `hubtool ls`"
        )
    if revision is None and (entry := registry.current(name)) is not None:
        return ResolvedDataset(name, str(entry.path), True, None, fingerprint(entry.path))
    return _resolve_on_hub(name, revision)


def load_dataset(name: str, split: str = "train", revision: str | None = None):
    """`datasets.Dataset` for a name resolved by `resolve_dataset` (a Hub dataset pinned to the
    commit it resolved to)."""
    import datasets  # datasets takes about a second to import: only when rows are loaded

    found = resolve_dataset(name, revision)
    try:
        if found.local:
            if parquet_rows(Path(found.path), name) == 0:  # `datasets` fails on it with a traceback
                raise UserError(
                    f"dataset {name!r} has no rows in split {split!r} ({found.path} holds 0 rows); rebuild it "
                    "with more problems or --keep all (`hubtool inspect RUN_DIR` shows why rows were dropped)"
                )
            try:
                # datasets caches a local folder by its name alone: a rebuilt `runs/cot`, or another
                # folder called `cot`, would come back with stale rows. Key the cache by content.
                cache = Path(datasets.config.HF_DATASETS_CACHE) / "hubtool-local" / found.fingerprint[:24]
                return datasets.load_dataset(found.path, split=split, cache_dir=str(cache))
            except FileNotFoundError as e:  # datasets' EmptyDatasetError and friends
                raise UserError(f"{found.path} holds no dataset ({str(e).splitlines()[0]})") from None
        with hub_errors(f"loading {name} from the Hub", name):
            return datasets.load_dataset(found.path, split=split, revision=found.fingerprint)
    except datasets.exceptions.DatasetGenerationError as e:  # an empty or corrupt file, e.g. on the Hub
        cause = " ".join(str(e.__cause__ or e).split())[:160]
        raise UserError(f"dataset {name!r} cannot be read ({cause}); rebuild or re-push it") from None
    except ValueError as e:
        if "split" in str(e).lower():
            raise MissingSplitError(f"dataset {name!r} has no split {split!r} ({str(e).splitlines()[0]})") from None
        raise


def parquet_rows(folder: Path, name: str | None = None) -> int | None:
    """Rows in a folder's data/*.parquet files (None when it has none); a UserError naming the
    file that cannot be read."""
    import pyarrow as pa  # pyarrow is slow to import (~150 ms): only when a file is read
    import pyarrow.parquet as pq

    files = sorted((folder / "data").glob("*.parquet"))
    total = 0
    for path in files:
        try:
            total += pq.read_metadata(path).num_rows
        except (pa.ArrowException, OSError) as e:
            where = f"{name}: " if name else ""
            raise UserError(f"{where}{path.relative_to(folder)} is not a readable parquet file "
                            f"({' '.join(str(e).split())[:120]}); rebuild or re-push the dataset") from None  # fmt: skip
    return total if files else None


def looks_like_dataset(folder: Path) -> bool:
    """A hubtool build or a folder `datasets.load_dataset` reads: a card that configures its data
    files, or data files at its top, one folder down (`train/`, `test/`) or anywhere in `data/`.
    Decided from the layout (and the card's head), never by reading every file."""
    if (folder / "manifest.json").is_file() or _card_has_configs(folder / "README.md"):
        return True
    near = [p for p in folder.iterdir() if p.is_file()]
    near += [p for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".") for p in d.iterdir()]
    data = [p for p in (folder / "data").rglob("*")] if (folder / "data").is_dir() else []
    return any(p.name.endswith(DATA_SUFFIXES) and p.is_file() for p in [*near, *data])


def _card_has_configs(card: Path) -> bool:
    try:
        with card.open(encoding="utf-8", errors="replace") as f:
            return "\nconfigs:" in f.read(65536)
    except OSError:
        return False


def fingerprint(folder: Path) -> str:
    """A stable hash of a folder's data files (names and contents; not the card or manifest)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if rel.name in NOT_DATA or any(part.startswith(".") for part in rel.parts) or rel.parts[0] == SHARDS:
            continue  # a sharded build's parts (caches, shard rows) are not its data
        h.update(str(rel.as_posix()).encode() + b"\0")
        h.update(_file_sha256(path))
    return h.hexdigest()


def _file_sha256(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()


def _resolve_on_hub(name: str, revision: str | None) -> ResolvedDataset:
    from huggingface_hub import HfApi  # only for a Hub name (its HTTP client ~75 ms)
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    local = "" if revision else f"not in the local registry ({registry_dir()}) and "
    if hub_offline():
        raise UserError(
            f"dataset {name!r} is {local}the Hub is off (HF_HUB_OFFLINE=1); see `hubtool ls`, "
            f"or publish it with `hubtool push RUN_DIR {name}`"
        )
    try:
        with hub_errors(
            f"looking up {name} on the Hub",
            name,
            passthrough=(RepositoryNotFoundError, RevisionNotFoundError),
        ):
            info = HfApi().dataset_info(name, revision=revision)
    except RevisionNotFoundError:
        raise UserError(
            f"dataset {name!r} has no revision {revision!r} on the Hub; check the branch or tag"
        ) from None
    except RepositoryNotFoundError:
        raise UserError(
            f"dataset {name!r} is {local}not on the Hub (or your token cannot see it); see `hubtool ls`"
        ) from None
    return ResolvedDataset(name, name, False, revision, info.sha)
