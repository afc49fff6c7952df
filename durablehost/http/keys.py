"""Access keys, and when they are required.

What counts as "on loopback": the host is bound to exactly ``127.0.0.1``, ``::1`` or ``localhost``.
There, as under ``func start``, keys are not checked: only processes on this machine can connect.
Bound to any other address — including other ``127.x.y.z`` addresses, which are loopback too but not
the default, and ``0.0.0.0`` — the host is "exposed" and:

* HTTP triggers honour their auth level: ``FUNCTION`` needs the function key or the master key,
  ``ADMIN`` needs the master key, ``ANONYMOUS`` needs nothing;
* the management API (``/runtime/webhooks/durabletask/…``) needs the system key or the master key;
* the key comes from the ``code`` query parameter or the ``x-functions-key`` header.

Keys come from settings (environment variables, or ``Values`` in ``local.settings.json``):
``DURABLEHOST_MASTER_KEY`` (required when exposed), ``DURABLEHOST_FUNCTION_KEY`` (optional) and
``DURABLEHOST_SYSTEM_KEY`` (optional; like Azure's ``durabletask_extension`` system key it is put into
the management links the durable client hands out, so that those links work when followed — without
it the links carry no key and callers must add theirs). Keys are never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

MASTER_KEY_SETTING = "DURABLEHOST_MASTER_KEY"
FUNCTION_KEY_SETTING = "DURABLEHOST_FUNCTION_KEY"
SYSTEM_KEY_SETTING = "DURABLEHOST_SYSTEM_KEY"
MIN_KEY_LENGTH = 16

DEFAULT_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class KeyConfigError(ValueError):
    """Keys are missing or unusable for the address the host is bound to."""


def is_exposed(bind_host: str) -> bool:
    """True unless bound to the default loopback addresses (see the module docstring)."""
    return bind_host.strip("[]").lower() not in DEFAULT_LOOPBACK


@dataclass(frozen=True)
class Keys:
    enforce: bool
    master: str | None = None
    function: str | None = None
    system: str | None = None

    def __repr__(self) -> str:  # never print a key, even by accident in a log of the config
        return f"Keys(enforce={self.enforce}, master={'set' if self.master else 'unset'})"

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], bind_host: str) -> Keys:
        master = settings.get(MASTER_KEY_SETTING) or None
        function = settings.get(FUNCTION_KEY_SETTING) or None
        system = settings.get(SYSTEM_KEY_SETTING) or None
        enforce = is_exposed(bind_host)
        if enforce and master is None:
            raise KeyConfigError(
                f"refusing to listen on {bind_host}: off the default loopback address (127.0.0.1) the "
                f"management API and non-anonymous HTTP triggers need keys; set {MASTER_KEY_SETTING} "
                f"(and optionally {FUNCTION_KEY_SETTING}, {SYSTEM_KEY_SETTING}) in the environment or in "
                "local.settings.json Values, or bind 127.0.0.1"
            )
        for name, key in ((MASTER_KEY_SETTING, master), (FUNCTION_KEY_SETTING, function),
                          (SYSTEM_KEY_SETTING, system)):  # fmt: skip
            if key is not None and len(key) < MIN_KEY_LENGTH:
                raise KeyConfigError(f"{name} is too short: use at least {MIN_KEY_LENGTH} characters")
        return cls(enforce=enforce, master=master, function=function, system=system)

    def allows_trigger(self, auth_level: str, presented: str | None) -> bool:
        """May a caller presenting ``presented`` call an HTTP trigger of ``auth_level``?"""
        if not self.enforce:
            return True
        level = auth_level.upper()
        if level == "ANONYMOUS":
            return True
        accepted = [self.master] if level == "ADMIN" else [self.master, self.function]
        return _matches(presented, accepted)

    def allows_management(self, presented: str | None) -> bool:
        if not self.enforce:
            return True
        return _matches(presented, [self.master, self.system])


def _matches(presented: str | None, accepted: list[str | None]) -> bool:
    if not presented:
        return False
    given = presented.encode("utf-8", "surrogatepass")
    # Compare against every key without stopping early: constant time whichever key matches.
    results = [hmac.compare_digest(given, key.encode("utf-8")) for key in accepted if key]
    return any(results)


def presented_key(query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The key a request presents: ``x-functions-key`` header, else the ``code`` query parameter."""
    return headers.get("x-functions-key") or query.get("code") or None
