"""Unit tests of the pure parts: route templates, configuration files, start input decoding, paths."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from durablehost.engine.fidelity import Fidelity
from durablehost.engine.versioning import FailureStrategy, MatchStrategy, Versioning
from durablehost.errors import InvalidRequest
from durablehost.http.appconfig import (
    ConfigError,
    apply_settings,
    read_behaviour,
    read_host_json,
    read_local_settings,
)
from durablehost.http.management import start_input
from durablehost.http.routes import RouteError, compile_route, match_route, sort_routes
from durablehost.http.serve import _dispatcher_options
from durablehost.http.server import management_segments


def test_route_templates() -> None:
    route = compile_route("api/orchestrators/{functionName}/{instanceId?}", "start")
    assert route.match("/api/orchestrators/hello") == {"functionName": "hello"}
    assert route.match("/API/Orchestrators/hello/abc/") == {"functionName": "hello", "instanceId": "abc"}
    assert route.match("/api/orchestrators") is None
    assert route.match("/api/orchestrators/a/b/c") is None
    typed = compile_route("items/{id:int}", "item")
    assert typed.match("/items/42") == {"id": "42"}
    assert typed.match("/items/abc") is None
    assert typed.match("/items/99999999999") is None  # beyond int32
    assert compile_route("x/{n:int?}", "x").match("/x") == {}
    assert compile_route("x/{n=7}", "x").match("/x") == {"n": "7"}
    assert compile_route("files/{*rest}", "f").match("/files/a/b") == {"rest": "a/b"}
    assert compile_route("f/{name}.{ext}", "f").match("/f/report.pdf") == {"name": "report", "ext": "pdf"}
    assert compile_route("g/{id:guid}", "g").match("/g/not-a-guid") is None
    with pytest.raises(RouteError):
        compile_route("a/{x?}/b", "bad")
    with pytest.raises(RouteError):
        compile_route("a/{x}/{X}", "bad")


def test_literal_routes_win_over_parameters() -> None:
    routes = sort_routes([compile_route("items/{id}", "by-id"), compile_route("items/new", "new")])
    found = match_route(routes, "/items/new")
    assert found is not None and found[0].target == "new"
    found = match_route(routes, "/items/7")
    assert found is not None and found[0].target == "by-id"


def test_start_input_decoding() -> None:
    # The SDK double-encodes (§5.4): the decoded string is the input text.
    assert start_input(json.dumps(json.dumps({"a": 1})).encode()) == '{"a": 1}'
    assert start_input(b'{"a": 1}') == '{"a": 1}'
    assert start_input(b'"plain text"') == '"plain text"'
    assert start_input(b"  ") is None
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        start_input(b"{nope")
    with pytest.raises(InvalidRequest, match="UTF-8"):
        start_input(b"\xff")


def test_management_segments() -> None:
    assert management_segments("/runtime/webhooks/durabletask/instances/a%2Fb?x=1") == ["instances", "a/b"]
    assert management_segments("/Runtime/WebHooks/DurableTask/instances/") == ["instances"]
    assert management_segments("/runtime/webhooks/durabletask") == []
    assert management_segments("/api/instances") is None


def test_local_settings_and_host_json(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(
        '\ufeff{"Values": {"A": "1", "B": 2, "HUB": "FromSetting"}, "Host": {"LocalHttpPort": 7072}}',
        encoding="utf-8",
    )
    local = read_local_settings(tmp_path)
    assert local.values == {"A": "1", "B": "2", "HUB": "FromSetting"} and local.http_port == 7072
    environ = {"A": "already"}
    assert apply_settings(local.values, environ) == ["B", "HUB"]
    assert environ == {"A": "already", "B": "2", "HUB": "FromSetting"}
    assert read_host_json(tmp_path).hub_name == "DurableHost"
    (tmp_path / "host.json").write_text(
        '{"extensions": {"http": {"routePrefix": "/"}, "durableTask": {"hubName": "%HUB%", '
        '"maxConcurrentOrchestratorFunctions": 3}}}'
    )
    config = read_host_json(tmp_path, environ)
    assert (config.route_prefix, config.hub_name, config.max_orchestrations) == ("", "FromSetting", 3)
    (tmp_path / "host.json").write_text(
        '{"extensions": {"durableTask": {"maxConcurrentActivityFunctions": 0}}}'
    )
    with pytest.raises(ConfigError, match="positive"):
        read_host_json(tmp_path, environ)
    (tmp_path / "local.settings.json").write_text('{"IsEncrypted": true, "Values": {}}')
    with pytest.raises(ConfigError, match="encrypted"):
        read_local_settings(tmp_path)


def test_host_json_function_timeout(tmp_path: Path) -> None:
    def timeout_of(value: object) -> float | None:
        (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "functionTimeout": value}))
        return read_host_json(tmp_path).function_timeout

    assert timeout_of("00:05:00") == 300
    assert timeout_of("1.02:00:30") == 93630
    assert timeout_of("-1") is None
    for bad in ("5 minutes", "00:00:00", 300):
        with pytest.raises(ConfigError, match="functionTimeout"):
            timeout_of(bad)


def test_host_json_versioning_and_fidelity(tmp_path: Path) -> None:
    def config(host_json: dict[str, object]) -> tuple[Versioning, Fidelity]:
        (tmp_path / "host.json").write_text(json.dumps(host_json))
        read = read_host_json(tmp_path)
        assert (read.versioning, read.fidelity) == read_behaviour(tmp_path)  # the harness reads the same
        return read.versioning, read.fidelity

    def durable(**settings: object) -> dict[str, object]:
        return {"version": "2.0", "extensions": {"durableTask": settings}}

    assert config({}) == (
        Versioning("", MatchStrategy.CURRENT_OR_OLDER, FailureStrategy.REJECT),
        Fidelity.DURABLEHOST,
    )
    assert config(durable(defaultVersion=None)) == config({})
    assert config(
        durable(defaultVersion="2.0", versionMatchStrategy="strict", versionFailureStrategy="FAIL")
    ) == (
        Versioning("2.0", MatchStrategy.STRICT, FailureStrategy.FAIL),
        Fidelity.DURABLEHOST,
    )
    # The extension resolves no %Setting% in defaultVersion (azure-functions-durable-extension#3279).
    assert config(durable(defaultVersion="%VERSION%"))[0].default_version == "%VERSION%"
    assert config({"durablehost": {"fidelity": "Azure"}})[1] is Fidelity.AZURE


@pytest.mark.parametrize(
    ("host_json", "message"),
    [
        (
            {"extensions": {"durableTask": {"defaultVersion": 2.0}}},
            r"extensions\.durableTask\.defaultVersion must be a string, not 2\.0; quote it "
            r'\("defaultVersion": "2\.0"\)',
        ),
        (
            {"extensions": {"durableTask": {"versionMatchStrategy": "Newest"}}},
            r'extensions\.durableTask\.versionMatchStrategy must be one of "None", "Strict", '
            r'"CurrentOrOlder" \(default "CurrentOrOlder"\), not \'Newest\'',
        ),
        (
            {"extensions": {"durableTask": {"versionFailureStrategy": 1}}},
            r'extensions\.durableTask\.versionFailureStrategy must be one of "Reject", "Fail" '
            r'\(default "Reject"\), not 1',
        ),
        (
            {"durablehost": {"fidelity": "exact"}},
            r"durablehost\.fidelity: unknown fidelity 'exact'; use one of: ",
        ),
        ({"durablehost": {"fidelty": "azure"}}, r"durablehost\.fidelty is not a durablehost setting"),
        ({"durablehost": "azure"}, r"'durablehost' must be an object"),
    ],
)
def test_bad_versioning_and_fidelity_settings_name_the_file_and_field(
    tmp_path: Path, host_json: dict[str, object], message: str
) -> None:
    (tmp_path / "host.json").write_text(json.dumps(host_json))
    for read in (read_host_json, read_behaviour):
        with pytest.raises(ConfigError, match=f"^{re.escape(str(tmp_path / 'host.json'))}: {message}"):
            read(tmp_path)


def test_host_json_lease_settings(tmp_path: Path) -> None:
    def config(durablehost: dict[str, object]) -> tuple[timedelta, bool]:
        (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "durablehost": durablehost}))
        read = read_host_json(tmp_path)
        options = _dispatcher_options(read, None)  # what `durablehost start` hands the engine
        assert (options.lease_duration, options.detect_dead_processes) == (
            read.lease_duration,
            read.detect_dead_processes,
        )
        return read.lease_duration, read.detect_dead_processes

    assert config({}) == (timedelta(seconds=15), True)
    assert config({"leaseDuration": "00:00:05"}) == (timedelta(seconds=5), True)
    assert config({"detectDeadProcesses": False}) == (timedelta(seconds=15), False)
    assert config({"detectDeadProcesses": True, "leaseDuration": "00:01:00"}) == (timedelta(minutes=1), True)
    assert config({"detectDeadProcesses": None}) == (timedelta(seconds=15), True)  # null: the default


@pytest.mark.parametrize(
    ("durablehost", "message"),
    [
        (
            {"detectDeadProcesses": "false"},
            r"durablehost\.detectDeadProcesses must be true or false \(a JSON boolean, unquoted\), "
            r"not 'false'$",
        ),
        ({"detectDeadProcesses": 0}, r"durablehost\.detectDeadProcesses must be true or false .*, not 0$"),
        ({"detectDeadProcesses": [True]}, r"durablehost\.detectDeadProcesses must be true or false"),
        (
            {"leaseDuration": "00:00:01"},
            r'durablehost\.leaseDuration must be a TimeSpan from "00:00:02" to "00:10:00"$',
        ),
        ({"leaseDuration": 15}, r'leaseDuration must be a TimeSpan like "00:05:00"'),
        (
            {"detectDeadProcess": False},
            r"durablehost\.detectDeadProcess is not a durablehost setting \(the section holds fidelity, "
            r"leaseDuration and detectDeadProcesses\)$",
        ),
    ],
)
def test_bad_lease_settings_name_the_file_and_field(
    tmp_path: Path, durablehost: dict[str, object], message: str
) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "durablehost": durablehost}))
    with pytest.raises(ConfigError, match=f"^{re.escape(str(tmp_path / 'host.json'))}: {message}"):
        read_host_json(tmp_path)
