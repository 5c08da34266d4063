"""Secret references: secrets are never written inline in inventory.toml or agent settings.

A secret is `env:NAME` (an environment variable) or `file:PATH` (a file, relative
paths resolved against the inventory's folder; one trailing newline stripped).
"""

from __future__ import annotations

import os
from pathlib import Path

SECRET_SCHEMES = ("env:", "file:")


class SecretError(ValueError):
    """A secret reference that cannot be resolved; the message names the reference."""


def is_secret_ref(value: str) -> bool:
    return value.startswith(SECRET_SCHEMES) and len(value.split(":", 1)[1]) > 0


def resolve_secret(ref: str, base_dir: Path | None = None) -> str:
    if ref.startswith("env:"):
        name = ref[4:]
        value = os.environ.get(name)
        if value is None:
            raise SecretError(f"{ref}: environment variable {name} is not set")
        return value
    if ref.startswith("file:"):
        path = Path(ref[5:]).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretError(f"{ref}: cannot read {path}: {exc.strerror or exc}") from exc
        return text[:-1] if text.endswith("\n") else text
    raise SecretError(f"{ref!r} is not a secret reference (expected env:NAME or file:PATH)")
