"""svamp rows -> the shared doc shape, read by the builders' own catalogue converter."""

from toolkit.evaluate.docs import process_docs_for

process_docs = process_docs_for("svamp")
