"""Credentials never leave hubtool: not in a manifest, card, failure log, log line, error or push.

Two nets, because a secret can arrive from anywhere (a teacher URL `http://user:KEY@host`, an env
var, a header a server echoes back in an error body, a completion that repeats it):
- by shape: the user:password part of any URL, and `?api_key=` / `?token=`-like query values;
- by value: every credential hubtool knows of (`remember`): the openai backend's key and URL
  password, the Hub token, and every environment variable whose name says it holds one
  (`*_API_KEY`, `*_TOKEN`, `*_SECRET`, `*PASSWORD`, ...).
`redact(text)` applies both; every writer (run directory, card, push, log handler, CLI errors)
calls it on what it writes.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
MIN_LENGTH = 8  # shorter values ("user", "true") are too common to mask wherever they occur
SECRET_NAME = re.compile(r"(API_?KEY|_KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?<=://)[^/\s@?#]+@")
_QUERY_SECRET = re.compile(r"([?&](?:api[_-]?key|key|token|access_token|secret|password|sig|signature)=)[^&\s#\"']+",
                           re.IGNORECASE)  # fmt: skip

_known: dict[str, str] = {}  # secret value -> where it came from ("$OPENAI_API_KEY", "the teacher URL")
ENV_REREAD_S = 1.0
_env_cache: list = [None, 0.0]  # [the secrets of os.environ, when they were read]


def remember(secret: str | None, source: str) -> None:
    """Mask `secret` in everything written from now on (values under MIN_LENGTH are masked only
    where their shape gives them away, as in a URL)."""
    if secret and len(secret) >= MIN_LENGTH:
        _known.setdefault(secret, source)


def environment_secrets(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every environment variable whose name says it holds a credential: value -> "$NAME". The
    process environment is read again at most every ENV_REREAD_S seconds (a build redacts every
    completion; a variable set later still counts)."""
    if env is not None:
        return {v: f"${k}" for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= MIN_LENGTH}
    now = time.monotonic()
    if _env_cache[0] is None or now - _env_cache[1] > ENV_REREAD_S:
        _env_cache[:] = [environment_secrets(dict(os.environ)), now]
    return _env_cache[0]


def _secrets() -> dict[str, str]:
    return {**environment_secrets(), **_known}


def remember_url(url: str, source: str) -> None:
    """The credentials inside a URL, and the Basic auth header an HTTP client makes of them."""
    parts = urlsplit(url)
    if parts.password:
        remember(parts.password, source)
        remember(base64.b64encode(f"{parts.username or ''}:{parts.password}".encode()).decode(), source)
    elif parts.username:  # `http://TOKEN@host`: the user name is the credential
        remember(parts.username, source)


def redact(text: str, *, shapes: bool = True) -> str:
    """`text` with every credential masked, by shape and by value. `shapes=False` masks only known
    values: for model output, where `https://user@host` may be content, not a credential."""
    if not text:
        return text
    if shapes:
        text = _URL_USERINFO.sub("", text)
        text = _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, text)
    for secret in sorted(_secrets(), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def found_in(text: str) -> str | None:
    """Where a credential in `text` came from, or None when it holds none (for refusals)."""
    if _URL_USERINFO.search(text) or _QUERY_SECRET.search(text):
        return "a URL"
    return next((source for secret, source in _secrets().items() if secret in text), None)


def redact_url(url: str) -> str:
    """The URL without any user:password part or secret query value, for messages and logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # a malformed port: mask by shape only
        return redact(url)
    return redact(urlunsplit(parts._replace(netloc=netloc))) if parts.scheme and parts.netloc else redact(url)
