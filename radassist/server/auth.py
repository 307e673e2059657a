"""Bearer-token authentication: one shared secret in a file that the server and its clients both read.

The token never travels in a URL and is compared in constant time. ``radassist serve`` without ``--token-file``
creates a random token in the user's cache folder (readable by the owner only), which is also where the client
looks by default, so a server and a client on the same account work with no setup.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from radassist.client import default_token_file, read_token_file
from radassist.io.atomic import atomic_path

__all__ = ["bearer_checker", "create_token_file", "default_token_file", "read_token_file"]


def create_token_file(path: str | Path) -> str:
    """Write a new random token to ``path`` (mode 0600) and return it; an existing file is kept and read."""
    path = Path(path)
    if path.exists():
        return read_token_file(path)
    token = secrets.token_urlsafe(32)
    with atomic_path(path) as temp:
        temp.write_text(token + "\n", encoding="utf-8")
        os.chmod(temp, 0o600)
    return token


def bearer_checker(token: str) -> Callable[..., None]:
    """A FastAPI dependency that answers 401 unless the request carries ``Authorization: Bearer <token>``.

    Declared through HTTPBearer so the OpenAPI spec says which endpoints need the token.
    """
    expected = token.encode("utf-8")
    scheme = HTTPBearer(auto_error=False, description="the token from the server's token file")

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(scheme)) -> None:
        given = b"" if credentials is None else credentials.credentials.encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    return check
