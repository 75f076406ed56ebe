"""`python -m toolkit.train RECIPE [--set KEY=VALUE ...] [--output-dir DIR] [--merge]`.

The same command as `hubtool train`, as a module, so `accelerate launch` can start it on every GPU:

    accelerate launch --config_file recipes/accelerate/zero3.yaml -m toolkit.train recipes/cot/llama-8b-full.yaml
"""

from __future__ import annotations

import sys

from toolkit.cli import main as cli


def main(argv: list[str] | None = None) -> None:
    cli.main(["train", *(sys.argv[1:] if argv is None else argv)], prog_name="python -m toolkit.train")


if __name__ == "__main__":
    main()
