"""Checks of a config file beyond its values: who can read the secrets in it.

``edge.config`` validates what the file says (types and ranges are errors naming the key;
an unknown key is a warning naming it, so a typo shows in the log). This module looks
at the file itself: a config that holds a secret (an MQTT password, HTTP headers such as
``Authorization``, a password inside a URL) and that any user on the machine may read is
reported, naming the file, its mode and the keys, never the values. ``warnings_for``
returns the lines; the caller logs them.
"""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

SECRET_KEYS = {"mqtt": ("username", "password"), "http": ("headers",)}
"""Keys whose values are credentials (MQTT login, HTTP headers such as Authorization)."""
URL_KEYS = (("http", "url"), ("mqtt", "url"))
"""URLs that may carry ``user:password@`` in them."""
PRIVATE_MODE = "0640"
"""What the README and deploy/ install: readable by root and the service's group only."""


def secret_keys(data: dict) -> list[str]:
    """``section.key`` of every secret the parsed config holds (values never returned)."""
    found = []
    for section, keys in SECRET_KEYS.items():
        table = data.get(section)
        if isinstance(table, dict):
            found += [f"{section}.{key}" for key in keys if table.get(key)]
    for section, key in URL_KEYS:
        table = data.get(section)
        value = table.get(key) if isinstance(table, dict) else None
        if isinstance(value, str) and _url_password(value):
            found.append(f"{section}.{key} (password in the URL)")
    return found


def _url_password(url: str) -> bool:
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return False


def warnings_for(path: str | Path) -> list[str]:
    """One line for a world-readable config holding secrets; none otherwise (or when unreadable:
    loading the file reports that)."""
    file = Path(path).expanduser()
    try:
        mode = file.stat().st_mode
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    secrets = secret_keys(data)
    if not secrets or not mode & stat.S_IROTH:
        return []
    return [
        f"{path}: holds secrets ({', '.join(secrets)}) but every user can read it "
        f"(mode {stat.S_IMODE(mode):04o}): chmod {PRIVATE_MODE[1:]} {path}"
    ]
