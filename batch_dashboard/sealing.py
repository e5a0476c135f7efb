"""Secrets we must be able to read back (webhook signing secrets), encrypted at rest.

API keys, passwords and tokens are only ever compared, so they are stored hashed. A webhook
secret has to sign every delivery, so it is stored sealed with Fernet (AES-128-CBC + HMAC-SHA256)
under `BATCH_SECRET_KEY`: a database dump or backup alone does not give anyone the power to
forge our webhooks.

`BATCH_SECRET_KEY` is a comma-separated list of Fernet keys; the first seals, every one unseals,
so a key is rotated by putting the new one first and running `python -m batch_dashboard
reseal-secrets`. Without it, a SQLite deployment (one machine) keeps a generated key in a file
beside its database file, readable by the owner only; a PostgreSQL deployment must set it,
because every backend and worker needs the same key.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import make_url

from batch_dashboard.settings import get_settings

PREFIX = "sealed:"


class SecretKeyMissing(RuntimeError):
    pass


def key_file_for(database_url: str) -> Path | None:
    """Where the generated key of a SQLite database lives (None: not a file database)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        return None
    database = Path(url.database)
    return database.with_name(database.name + ".key")


def _file_key(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting together agree on one key, whoever writes first.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(Fernet.generate_key().decode() + "\n")
    return path.read_text().strip()


@lru_cache(maxsize=8)
def _cipher(configured: str, database_url: str) -> MultiFernet:
    if configured.strip():
        keys = [key.strip() for key in configured.split(",") if key.strip()]
    else:
        path = key_file_for(database_url)
        if path is None:
            raise SecretKeyMissing(
                "BATCH_SECRET_KEY is not set: with PostgreSQL every backend and worker needs the "
                'same key to seal webhook secrets. Generate one with `python -c "from '
                'cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.'
            )
        keys = [_file_key(path)]
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as error:
        raise SecretKeyMissing(
            "BATCH_SECRET_KEY must be Fernet keys (32 url-safe base64-encoded bytes each)"
        ) from error


def cipher(database_url: str | None = None) -> MultiFernet:
    """The configured cipher; raises SecretKeyMissing with what to do when there is none."""
    settings = get_settings()
    return _cipher(settings.secret_key, database_url or settings.database_url)


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def seal(secret: str) -> str:
    return PREFIX + cipher().encrypt(secret.encode()).decode()


def unseal(stored: str) -> str:
    if not is_sealed(stored):
        raise ValueError("not a sealed value")
    try:
        return cipher().decrypt(stored.removeprefix(PREFIX).encode()).decode()
    except InvalidToken as error:
        raise SecretKeyMissing(
            "a stored secret does not open with BATCH_SECRET_KEY (was the key changed "
            "without keeping the old one second in the list?)"
        ) from error


def reseal(stored: str, *, database_url: str | None = None) -> str:
    """The secret sealed under the first key: after a key rotation, or a plaintext one from
    before secrets were sealed."""
    box = cipher(database_url)
    if not is_sealed(stored):
        return PREFIX + box.encrypt(stored.encode()).decode()
    return PREFIX + box.rotate(stored.removeprefix(PREFIX).encode()).decode()
