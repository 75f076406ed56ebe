"""The package's version, in its own module so that any layer can read it (pyproject.toml holds the same)."""

__version__ = "0.1.0"
