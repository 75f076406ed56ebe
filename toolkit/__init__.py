"""hubtool: distil reasoning from large language models into small ones."""

__version__ = "0.1.0"
