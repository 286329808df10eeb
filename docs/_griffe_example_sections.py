"""A griffe extension for the API reference: read ``Example:`` docstring sections as examples.

The house style writes ``Example:`` (as the Google style guide does); griffe recognises only ``Examples:`` and
would render the section as prose, so that ``>>> d["key"]`` turned into a broken cross-reference. Renaming the
title before griffe parses the docstring makes it a code example, as intended. Loaded by mkdocs.yml.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE_TITLE = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename each docstring's ``Example:`` section title to ``Examples:``."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of every object as it is created, before anything parses it."""
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE_TITLE.sub(r"\1Examples:", obj.docstring.value)
