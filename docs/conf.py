"""Sphinx configuration: the Markdown pages of docs/ (MyST) and the API
reference generated from the docstrings (autodoc).  Built in CI with
warnings as errors:

    python3 -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

project = "pycontainer"
copyright = "pycontainer authors"
author = "pycontainer authors"

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "examples"]

myst_heading_anchors = 3  # (the pages link to each other's sections: cli.md#restart-policies)
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
html_theme = "alabaster"
html_title = "pycontainer"
