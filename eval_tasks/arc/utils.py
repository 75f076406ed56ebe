"""ARC (Easy and Challenge) rows -> the shared doc shape, read by the builders' own catalogue
converter (which answers every question with letters, also where ARC labels options "1".."4")."""

from toolkit.evaluate.docs import process_docs_for

process_docs = process_docs_for("arc_easy")  # both ARC configs share one schema and converter
