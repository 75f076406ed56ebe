"""Publishing and loading datasets by name: the local registry, the Hugging Face Hub, one resolver.

    push(run_dir, "org/name")              -> the local registry ($HUBTOOL_HOME/datasets/org/name)
    push(run_dir, "org/name", hub=True)    -> the Hub, in one commit (data + card + manifest.json)
    resolve_dataset("org/name")            -> a local directory, then the local registry, then the Hub
    load_dataset("org/name", split="train") -> datasets.Dataset

The CLI, the training recipes and the eval code all resolve names through `resolve_dataset`, so a
name means the same dataset everywhere. Heavy libraries are imported inside the functions.
"""

from toolkit.hub.names import validate_repo_id
from toolkit.hub.push import PushResult, push
from toolkit.hub.registry import LocalEntry, list_local
from toolkit.hub.resolve import ResolvedDataset, load_dataset, resolve_dataset

__all__ = [
    "LocalEntry",
    "PushResult",
    "ResolvedDataset",
    "list_local",
    "load_dataset",
    "push",
    "resolve_dataset",
    "validate_repo_id",
]
