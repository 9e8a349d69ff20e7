"""Encryption of stored secrets (provider credentials) with Fernet.

The key comes from ``PROMPTSTUDIO_SECRET_KEY`` (``settings.secret_key``: a Fernet key, 32 bytes in
url-safe base64) or, when that is unset, from the file ``secret.key`` in the data directory, which
is created (mode 0600) on first use. A key that is not a valid Fernet key is refused with a message
naming where it came from; ``check_secret_key`` runs at start-up so that a garbled key stops the
server before it serves a request. Losing the key makes stored credentials unreadable (they must be
set again); changing it does too.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from app.settings import Settings, SettingsError

KEY_FILE_NAME = "secret.key"
GENERATE_HINT = ('generate one with: python -c "from cryptography.fernet import Fernet; '
                 'print(Fernet.generate_key().decode())"')


class SecretKeyError(SettingsError):
    """The secret key is missing, unreadable or not a Fernet key."""


class DecryptionError(Exception):
    """A stored secret cannot be decrypted with the current key (the key changed, or the data is damaged)."""


_lock = threading.Lock()
_cache: dict[tuple[str | None, str], Fernet] = {}


def key_file(settings: Settings) -> Path:
    return Path(settings.data_dir) / KEY_FILE_NAME


def _fernet_from(key: str | bytes, source: str) -> Fernet:
    try:
        return Fernet(key.strip() if isinstance(key, (str, bytes)) else key)
    except (ValueError, TypeError):
        raise SecretKeyError(
            f"{source} is not a valid Fernet key (32 bytes in url-safe base64, 44 characters); {GENERATE_HINT}"
        ) from None


def _read_or_create_key_file(path: Path, *, create: bool) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if not create:
            return None
    except OSError as exc:
        raise SecretKeyError(f"cannot read the secret key file {path}: {exc.strerror}") from None
    key = Fernet.generate_key()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it meanwhile: use theirs
        return path.read_bytes()
    except OSError as exc:
        raise SecretKeyError(
            f"cannot create the secret key file {path}: {exc.strerror}; set PROMPTSTUDIO_SECRET_KEY instead"
        ) from None
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


def fernet(settings: Settings, *, create: bool = True) -> Fernet | None:
    """The Fernet instance for the settings' key (cached). None only when ``create`` is False and
    there is neither a configured key nor a key file yet."""
    cache_key = (settings.secret_key, str(Path(settings.data_dir).resolve()))
    with _lock:
        f = _cache.get(cache_key)
        if f is not None:
            return f
        if settings.secret_key:
            f = _fernet_from(settings.secret_key, "PROMPTSTUDIO_SECRET_KEY")
        else:
            path = key_file(settings)
            raw = _read_or_create_key_file(path, create=create)
            if raw is None:
                return None
            f = _fernet_from(raw, f"the secret key file {path}")
        _cache[cache_key] = f
        return f


def encrypt(settings: Settings, plaintext: str) -> bytes:
    f = fernet(settings)
    assert f is not None
    return f.encrypt(plaintext.encode())


def decrypt(settings: Settings, token: bytes) -> str:
    f = fernet(settings)
    assert f is not None
    try:
        return f.decrypt(bytes(token)).decode()
    except InvalidToken:
        raise DecryptionError(
            "a stored provider credential cannot be decrypted with the current secret key "
            "(PROMPTSTUDIO_SECRET_KEY or the key file changed); set the credential again"
        ) from None


def check_secret_key(settings: Settings) -> None:
    """Fail at start-up on a configured key (or an existing key file) that is not a Fernet key."""
    fernet(settings, create=False)


async def start_hook(runtime, **_: object) -> None:
    """Lifecycle start hook: refuse to start with a garbled secret key."""
    check_secret_key(runtime.settings)
