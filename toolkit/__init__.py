"""hubtool: distil reasoning from large language models into small ones.

    from toolkit import build, push, train, score, load_dataset

The Python API (`toolkit.api`) is what the `hubtool` commands call. It loads on first use of one
of its names, so `import toolkit` (which every submodule does) stays as light as this file.
"""

from toolkit.version import __version__

_API = ("BuildResult", "build", "load_dataset", "merge", "push", "score", "train")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    # PEP 562: the API's names resolve lazily. `toolkit.train` is also a module (`python -m
    # toolkit.train`, for accelerate); it is never imported in-process, so the name stays the function.
    if name in _API:
        from toolkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
