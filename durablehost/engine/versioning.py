"""Orchestration versioning: which versions a process may run, and DTFx's rules for comparing them.

What Azure does (Durable Functions "orchestration versioning", extension 3.1+ with DTFx Core's
``VersioningSettings`` and ``TaskOrchestrationDispatcher``, read at Azure/durabletask @5217032):

* host.json ``extensions.durableTask.defaultVersion`` is stamped on every orchestration this app creates
  (client starts and sub-orchestrations) unless the caller names a version; it is also the version this
  worker compares instances with.
* Before every episode of an orchestration (never for entities or activities) the worker compares the
  instance's version with its own: ``None`` runs everything, ``Strict`` needs the same string (ordinal,
  case-sensitive), ``CurrentOrOlder`` (the default) needs the instance's version to compare at or below
  the worker's (:func:`compare_versions`).
* A refused episode is, with ``versionFailureStrategy`` ``Reject`` (the default), abandoned: nothing is
  written (DTFx #1220 made sure of it) and the work comes back later with an exponential delay; with
  ``Fail`` the instance fails with ``FailureDetails("VersionMismatch", "Orchestration version did not
  comply with Worker Versioning")``.

Not verified (the newest extension source was not available): whether the check also runs when
``defaultVersion`` is unset. durablehost applies it with an empty worker version, as DTFx's settings
would (an explicitly versioned instance then waits, with a log line saying why); so an app never passes
here and fails in Azure.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass

# DTFx TaskOrchestrationDispatcher: the FailureDetails of a version mismatch with the Fail strategy.
MISMATCH_ERROR_TYPE = "VersionMismatch"
MISMATCH_MESSAGE = "Orchestration version did not comply with Worker Versioning"


class MatchStrategy(enum.StrEnum):
    NONE = "None"
    STRICT = "Strict"
    CURRENT_OR_OLDER = "CurrentOrOlder"


class FailureStrategy(enum.StrEnum):
    REJECT = "Reject"
    FAIL = "Fail"


@dataclass(frozen=True)
class Versioning:
    """This process's host.json versioning settings (Azure's defaults when host.json has none)."""

    default_version: str = ""
    match: MatchStrategy = MatchStrategy.CURRENT_OR_OLDER
    failure: FailureStrategy = FailureStrategy.REJECT

    def version_for(self, requested: str | None) -> str:
        """The version a new instance gets: the one asked for (an empty string included), else the
        default (extension PR #3213: an explicit version overrides defaultVersion)."""
        return self.default_version if requested is None else requested

    def permits(self, version: str) -> bool:
        """May this process run an episode of an instance of ``version``?"""
        if self.match is MatchStrategy.STRICT:
            return version == self.default_version
        if self.match is MatchStrategy.CURRENT_OR_OLDER:
            return compare_versions(version, self.default_version) <= 0
        return True

    def refusal(self, version: str) -> str:
        """Why an instance of ``version`` is refused, naming both versions and the way out."""
        rule = "the same version" if self.match is MatchStrategy.STRICT else "a version at or below it"
        return (
            f"the instance's version {version!r} does not comply with this app's versioning: "
            f"defaultVersion {self.default_version!r}, versionMatchStrategy {self.match.value} "
            f"(instances must have {rule}); host.json extensions.durableTask decides"
        )


def compare_versions(source: str, other: str) -> int:
    """DTFx ``VersioningSettings.CompareVersions``: <0, 0 or >0 as ``source`` is older, equal or newer.

    Blank (empty or white space) versions are equal to each other and older than any other; two
    versions that both parse as .NET ``System.Version`` compare numerically (``1.10`` > ``1.9``,
    ``1.0`` < ``1.0.0``); anything else compares as text, ordinal and case-insensitive. ``System.Version``
    needs at least two parts, so single numbers compare as text: ``"10"`` is *older* than ``"2"``.
    """
    source_blank, other_blank = _is_blank(source), _is_blank(other)
    if source_blank or other_blank:
        return int(other_blank) - int(source_blank)
    source_parsed, other_parsed = parse_dotnet_version(source), parse_dotnet_version(other)
    if source_parsed is not None and other_parsed is not None:
        return (source_parsed > other_parsed) - (source_parsed < other_parsed)
    return _compare_ordinal_ignore_case(source, other)


def parse_dotnet_version(text: str) -> tuple[int, int, int, int] | None:
    """.NET ``Version.TryParse``: 2 to 4 dot-separated parts, each an ``int.TryParse`` with
    ``NumberStyles.Integer`` (white space around, a leading sign) that is not negative. Missing build and
    revision parts are -1, which is how ``Version.CompareTo`` orders ``1.0`` before ``1.0.0``."""
    parts = text.split(".")
    if not 2 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        number = _parse_dotnet_int(part)
        if number is None or number < 0:
            return None
        numbers.append(number)
    numbers += [-1] * (4 - len(numbers))
    return numbers[0], numbers[1], numbers[2], numbers[3]


_INT_MAX = 2**31 - 1
_NUMBER_WHITE = " \t\n\v\f\r"  # .NET Number.IsWhite: U+0020 and U+0009-U+000D


def _parse_dotnet_int(text: str) -> int | None:
    """``int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture)``: ASCII digits only,
    optional white space on both sides, one leading ``+``/``-``, and trailing NULs (which .NET ignores)."""
    body = text.rstrip("\0").strip(_NUMBER_WHITE)
    negative = body.startswith("-")
    if body[:1] in ("+", "-"):
        body = body[1:]
    if not body or not all("0" <= c <= "9" for c in body):
        return None
    value = -int(body) if negative else int(body)
    return value if -_INT_MAX - 1 <= value <= _INT_MAX else None


def _is_blank(text: str) -> bool:
    """.NET ``string.IsNullOrWhiteSpace`` (``char.IsWhiteSpace``: separators, the C0 white space, NEL and
    NBSP; unlike Python's ``isspace`` not U+001C-U+001F)."""
    return all(c in "\t\n\v\f\r\x85\xa0" or unicodedata.category(c) in ("Zs", "Zl", "Zp") for c in text)


def _compare_ordinal_ignore_case(a: str, b: str) -> int:
    """``string.Compare(a, b, StringComparison.OrdinalIgnoreCase)``: both upper-cased character by
    character (simple case mapping), then compared as UTF-16 code units. Exact for ASCII; for other
    scripts .NET's casing table may differ from Python's in rare characters (not verified)."""
    upper_a, upper_b = _utf16_upper(a), _utf16_upper(b)
    return (upper_a > upper_b) - (upper_a < upper_b)


def _utf16_upper(text: str) -> bytes:
    simple = "".join(u if len(u := c.upper()) == 1 else c for c in text)
    return simple.encode("utf-16-be", "surrogatepass")  # big-endian: bytes order as code units do


__all__ = [
    "MISMATCH_ERROR_TYPE",
    "MISMATCH_MESSAGE",
    "FailureStrategy",
    "MatchStrategy",
    "Versioning",
    "compare_versions",
    "parse_dotnet_version",
]
