"""The documentation backend: LaTeX and Markdown of every spec, with its checks."""

from symopt.backends.docs.backend import DocsBackend

__all__ = ["DocsBackend"]
