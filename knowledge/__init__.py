"""The knowledge base: standard questions with a short speakable answer, the
procedure, the required materials and the words callers use for them.

The files in ``config/knowledge/`` (one per department) are the source the
editors change; :mod:`knowledge.files` loads, validates, imports and exports
them, :mod:`knowledge.store` seeds PostgreSQL from them and records the
questions the router could not place. The router (:mod:`routing`) reads the
files directly, so it works with no database.
"""

from knowledge.model import KnowledgeItem, Problem
from knowledge.files import (
    DEFAULT_DIRECTORY,
    KnowledgeFileError,
    export_csv,
    export_json,
    knowledge_directory,
    load_items,
)

__all__ = [
    "DEFAULT_DIRECTORY",
    "KnowledgeFileError",
    "KnowledgeItem",
    "Problem",
    "export_csv",
    "export_json",
    "knowledge_directory",
    "load_items",
]
