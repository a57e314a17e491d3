"""Reporters: terminal, JSON, Markdown, JUnit, HTML (each a registered plugin)."""
