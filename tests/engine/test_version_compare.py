"""The version rules, as DTFx applies them (VersioningSettings.CompareVersions and the dispatcher's match
strategies; .NET Version.TryParse for the numeric case)."""

from __future__ import annotations

import pytest

from durablehost.engine.versioning import (
    FailureStrategy,
    MatchStrategy,
    Versioning,
    compare_versions,
    parse_dotnet_version,
)


def sign(value: int) -> int:
    return (value > 0) - (value < 0)


# The rows of DTFx's own test (Test/DurableTask.Core.Tests/VersionSettingsTests.cs), then the edges.
@pytest.mark.parametrize(
    ("instance", "worker", "expected"),
    [
        ("1.0.0", "1.0.0", 0),
        ("1.1.0", "1.0.0", 1),
        ("1.0.0", "1.1.0", -1),
        ("1", "1", 0),
        ("2", "1", 1),
        ("1", "2", -1),
        ("", "1", -1),
        ("1", "", 1),
        ("", "", 0),
        # Both parse as System.Version: numeric, part by part; a missing part (-1) is below 0.
        ("1.10", "1.9", 1),
        ("1.0", "1.0.0", -1),
        ("2.0.0.1", "2.0.0", 1),
        (" 1 . +2 ", "1.2", 0),
        # Single numbers are not System.Versions, so they compare as text: "10" is older than "2".
        ("10", "2", -1),
        ("2", "2.0", -1),
        # Text: ordinal after upper-casing, so case does not count and "_" sorts after letters.
        ("v1-release", "v2-release", -1),
        ("V1", "v1", 0),
        ("a_", "aB", 1),
        ("1.0", "abc", -1),
        ("1.0", "1.0.0.0.0", -1),
        # Blank is white space as .NET sees it (not U+001C, which Python's isspace counts).
        (" \t", "", 0),
        ("\u00a0", "1.0", -1),
        ("\x1c", "", 1),
    ],
)
def test_compare_versions_as_dtfx_does(instance: str, worker: str, expected: int) -> None:
    assert sign(compare_versions(instance, worker)) == expected
    assert sign(compare_versions(worker, instance)) == -expected


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("1.2", (1, 2, -1, -1)),
        ("1.2.3.4", (1, 2, 3, 4)),
        ("01.002", (1, 2, -1, -1)),
        ("1.-0", (1, 0, -1, -1)),  # int.TryParse reads "-0" as 0, which is not negative
        ("1.2\0", (1, 2, -1, -1)),  # .NET ignores trailing NULs
        ("1", None),
        ("1.2.3.4.5", None),
        ("1.", None),
        ("1.-1", None),
        ("1.+ 2", None),
        ("1.2147483648", None),  # beyond Int32
        ("1.2\0 ", None),
        ("1.\u0663", None),  # only ASCII digits
        ("1.0-beta", None),
    ],
)
def test_dotnet_version_parsing(text: str, parsed: tuple[int, int, int, int] | None) -> None:
    assert parse_dotnet_version(text) == parsed


def test_strict_needs_the_same_string() -> None:
    strict = Versioning("1.0", MatchStrategy.STRICT)
    assert strict.permits("1.0")
    assert not strict.permits("1.0.0")  # equal as System.Version, but Strict compares strings
    assert not Versioning("v1", MatchStrategy.STRICT).permits("V1")  # ordinal, case-sensitive
    assert not strict.permits("")
    assert Versioning("", MatchStrategy.STRICT).permits("")


def test_current_or_older_is_the_default_and_compares() -> None:
    worker = Versioning("2.0")
    assert worker.match is MatchStrategy.CURRENT_OR_OLDER
    assert worker.failure is FailureStrategy.REJECT
    assert all(worker.permits(v) for v in ("", "1.0", "1.9.9", "2.0", "2"))
    assert not worker.permits("2.0.1")
    assert not worker.permits("3.0")
    # Without a defaultVersion only unversioned instances qualify (module docstring: unverified).
    assert Versioning().permits("")
    assert not Versioning().permits("1.0")


def test_none_runs_everything() -> None:
    assert Versioning("1.0", MatchStrategy.NONE).permits("99.0")


def test_an_explicit_version_overrides_the_default_even_when_empty() -> None:
    worker = Versioning("2.0")
    assert worker.version_for(None) == "2.0"
    assert worker.version_for("1.0") == "1.0"
    assert worker.version_for("") == ""


def test_the_refusal_names_both_versions_and_the_rule() -> None:
    message = Versioning("1.0").refusal("2.0")
    assert "'2.0'" in message and "defaultVersion '1.0'" in message
    assert "CurrentOrOlder" in message and "host.json" in message
