"""Docora: watches git repositories and pushes file changes as signed webhooks."""

__version__ = "0.1.0"
