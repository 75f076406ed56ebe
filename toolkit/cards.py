"""Dataset cards for run directories. (Minimal: YAML `configs` so `load_dataset(RUN)` finds the
parquet, and the key facts; the publishing work renders the full card from dataset_cards/.)"""

from __future__ import annotations

import json
from pathlib import Path

from toolkit.rundir import DATA_FILE, MANIFEST, atomic_write


def write_card(run_dir: str | Path) -> None:
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / MANIFEST).read_text())
    meta = (
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
        f"    path: {DATA_FILE}\ntags:\n- synthetic\n- distillation\n- hubtool\n---\n"
    )
    body = f"# {manifest['method']} build\n\nTeacher: `{manifest.get('teacher_identity')}`\n"
    atomic_write(run_dir / "README.md", (meta + body).encode())
