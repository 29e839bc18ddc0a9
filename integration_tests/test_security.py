"""Security guarantees (docs/reliability.md): the API key never leaves the process, emails are masked in
output, plain http only to loopback, TLS verification always on, pinned dependencies, no unsafe evaluation."""

from __future__ import annotations

import ast
import json
import re
import threading
from pathlib import Path

import pytest
import requests
from urllib3.util import parse_url

from destination_iterable.config import parse_config, validate_base_url
from destination_iterable.errors import ConfigError, IterableDestinationError
from destination_iterable.iterable.client import IterableClient
from destination_iterable.sync.writer import build_client
from integration_tests.conftest import TEST_API_KEY, TEST_READ_ONLY_KEY
from integration_tests.harness import REPO_ROOT, make_catalog, make_config, record
from integration_tests.reliability_helpers import (
    FORGOTTEN_EMAIL,
    LONG_EMAIL,
    FaultProxy,
    Rule,
    SelfSignedHttps,
    assert_no_traceback,
    bad_input_run,
    error_of,
    iterable_error_body,
    proxied_config,
    run_cli,
)

PACKAGE = REPO_ROOT / "destination_iterable"
WRONG_KEY = "wrong-secret-key-9f8e7d6c5b4a3f2e1d"
LEAKED_EMAIL = "jane.leaked@example.com"


def _assert_key_absent(result, key):
    text = result.stdout + result.stderr
    assert key not in text, text[max(0, text.find(key) - 300):][:600]
    assert_no_traceback(result)


# ------------------------------------------------------------------------------------------ API key
@pytest.mark.parametrize("case", ["wrong_key", "read_only_key", "check_wrong_key"])
def test_api_key_never_in_output_even_when_the_server_echoes_it(sandbox, case):
    """The sandbox's echo_api_key_in_errors mode puts the caller's key in every error body (msg and
    params); none of it may reach stdout, stderr, logs or TRACE messages."""
    sandbox.client.set_config(echo_api_key_in_errors=True)
    key = TEST_READ_ONLY_KEY if case == "read_only_key" else WRONG_KEY
    config = make_config(sandbox, api_key=key, retry_max_seconds=2)
    if case == "check_wrong_key":
        result = run_cli("check", config)
        assert result.connection_status["status"] == "FAILED"
        assert "API key" in result.connection_status["message"]
    else:
        result = run_cli("write", config, make_catalog("s_key"), [record("s_key", {"email": "a@example.com"})])
        assert error_of(result)["failure_type"] == "config_error"
    _assert_key_absent(result, key)


def test_key_and_email_in_an_error_answer_are_not_repeated(sandbox):
    """A 400 whose body carries the key and a member's email: the config_error names the stream and the
    problem, without the key and without the full email."""
    msg = f"Invalid params: 'subscribers[0].email' {LEAKED_EMAIL} rejected (api key: {TEST_API_KEY})"
    rule = Rule("POST", "/api/lists/subscribe", "respond", status=400, times=None,
                body=iterable_error_body(msg, "BadParams", {"apiKey": TEST_API_KEY, "email": LEAKED_EMAIL}))
    with FaultProxy(sandbox.url, [rule]) as proxy:
        result = run_cli("write", proxied_config(sandbox, proxy), make_catalog("s_body"),
                         [record("s_body", {"email": LEAKED_EMAIL})])
    error = error_of(result)
    assert error["failure_type"] == "config_error" and "s_body" in error["message"]
    _assert_key_absent(result, TEST_API_KEY)
    text = result.stdout + result.stderr
    assert LEAKED_EMAIL not in text, "the full email from Iterable's answer is printed: " + \
        text[max(0, text.find(LEAKED_EMAIL) - 200):][:400]


def test_exception_texts_never_contain_the_key(sandbox):
    """Every typed error raised by the client (401, read-only 401, invalidListId, BatchTooLarge, 5xx budget)
    has neither the key in str(), repr() nor .message, with the server echoing it."""
    sandbox.client.set_config(echo_api_key_in_errors=True, max_subscribers=1)
    calls = [
        (WRONG_KEY, lambda c: c.list_lists()),
        (TEST_READ_ONLY_KEY, lambda c: c.create_list("x", "y")),
        (TEST_API_KEY, lambda c: c.subscribe(999, [{"email": "a@example.com"}], stream="s")),
        (TEST_API_KEY, lambda c: c.subscribe(c.create_list("z", ""), [{"email": "a@example.com"},
                                                                      {"email": "b@example.com"}], stream="s")),
    ]
    for key, call in calls:
        client = IterableClient(sandbox.url, key, retry_max_seconds=0.5, timeout_seconds=5)
        with pytest.raises(IterableDestinationError) as caught:
            call(client)
        for text in (str(caught.value), repr(caught.value), caught.value.message):
            assert key not in text, text
        client.close()
    sandbox.client.set_config(error_rate=1.0)
    client = IterableClient(sandbox.url, TEST_API_KEY, retry_max_seconds=0.5, timeout_seconds=5)
    with pytest.raises(IterableDestinationError) as caught:
        client.list_lists()
    assert TEST_API_KEY not in str(caught.value) + repr(caught.value)


def test_config_repr_hides_the_key():
    config = parse_config({"api_key": TEST_API_KEY, "privacy_consent": True})
    assert TEST_API_KEY not in repr(config) and TEST_API_KEY not in str(config)


# ------------------------------------------------------------------------------------------ email masking
def test_full_emails_of_rejected_and_skipped_rows_never_appear_in_output():
    """Rows rejected by Iterable (GDPR-forgotten, type conflict) are logged masked; rows skipped locally
    (300-character email, 5 MB record) are not printed at all."""
    shared = bad_input_run()
    text = shared.result.stdout + shared.result.stderr
    for full in (FORGOTTEN_EMAIL, "typed.wrong@example.com", LONG_EMAIL, "big.record@example.com"):
        assert full not in text, full
    assert "f***@example.com" in text, "rejected rows are reported, masked"


# ------------------------------------------------------------------------------------------ transport
REFUSED_URLS = [
    "http://example.com", "http://10.0.0.1:8080", "http://localhost.evil.example", "http://127.0.0.1.nip.io",
    "http://[::ffff:8.8.8.8]:80", "ftp://127.0.0.1", "https://", "http://",
    "http://evil.example\\@127.0.0.1:1/",   # urlsplit sees 127.0.0.1; requests connects to evil.example
]
ACCEPTED_URLS = ["https://api.example.com", "https://proxy.example.com/iterable", "http://127.0.0.1:8080",
                 "http://localhost:1", "http://[::1]:1", "http://127.5.5.5"]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_plain_http_is_refused_except_to_loopback(url):
    with pytest.raises(ConfigError, match="https"):
        validate_base_url(url)


@pytest.mark.parametrize("url", ACCEPTED_URLS)
def test_accepted_urls_reach_the_host_that_was_validated(url):
    """Whatever validate_base_url accepts, requests connects over https, or over http to loopback."""
    checked = validate_base_url(url)
    prepared = parse_url(requests.Request("GET", checked + "/api/lists").prepare().url)
    assert prepared.scheme == "https" or prepared.host.strip("[]") in ("127.0.0.1", "127.5.5.5", "localhost", "::1")


def test_cli_refuses_plain_http_to_a_remote_host(sandbox):
    result = run_cli("write", make_config(sandbox, api_base_url="http://example.com"), make_catalog("s_http"),
                     [record("s_http", {"email": "a@example.com"})])
    error = error_of(result)
    assert error["failure_type"] == "config_error" and "https" in error["message"]
    assert_no_traceback(result)


def _verifies(session) -> bool:
    """requests verifies with verify=True or with a CA bundle path; any falsy value turns it off."""
    return session.verify is True or (isinstance(session.verify, str) and Path(session.verify).is_file())


@pytest.mark.parametrize("env", [{}, {"CURL_CA_BUNDLE": "", "REQUESTS_CA_BUNDLE": ""}])
def test_tls_verification_cannot_be_switched_off_by_config(monkeypatch, env):
    """Settings that would disable verification elsewhere are ignored, and so are empty CA-bundle variables
    (an empty CURL_CA_BUNDLE once disabled verification in requests): a self-signed certificate fails and
    no request reaches the server."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with SelfSignedHttps() as server:
        raw = {"api_key": TEST_API_KEY, "privacy_consent": True, "api_base_url": server.url,
               "retry_max_seconds": 1, "verify": False, "verify_ssl": False, "tls_verify": False,
               "ssl": False, "insecure": True, "tls_insecure_skip_verify": True}
        client = build_client(parse_config(raw), threading.Event())
        assert _verifies(client.session), client.session.verify
        with pytest.raises(IterableDestinationError):
            client.list_lists()
        client.close()
        assert server.requests == 0


def test_no_code_path_disables_tls_verification():
    falsy = r"(False|0|None|\"\"|'')(?!\w)"
    pattern = re.compile(rf"verify\s*=\s*{falsy}|\.verify\s*=\s*{falsy}|CERT_NONE|_create_unverified_context|"
                         r"check_hostname\s*=\s*False|disable_warnings|PYTHONHTTPSVERIFY")
    hits = [f"{path.name}:{n}: {line.strip()}" for path in PACKAGE.rglob("*.py")
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []
    spec = json.loads((PACKAGE / "spec.json").read_text())["connectionSpecification"]["properties"]
    assert not [name for name in spec if re.search(r"verify|ssl|tls|insecure|cert", name, re.I)]


# ------------------------------------------------------------------------------------------ supply chain
def _requirement_lists() -> dict[str, list[str]]:
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = [ast.literal_eval(item) for item in node.value.elts]
    setup_call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    found = {}
    for keyword in setup_call.keywords:
        if keyword.arg == "install_requires":
            found["install_requires"] = names[keyword.value.id] if isinstance(keyword.value, ast.Name) else \
                ast.literal_eval(keyword.value)
        if keyword.arg == "extras_require" and isinstance(keyword.value, ast.Dict):
            for key, value in zip(keyword.value.keys, keyword.value.values, strict=True):
                found[f"extras[{ast.literal_eval(key)}]"] = names[value.id] if isinstance(value, ast.Name) else \
                    ast.literal_eval(value)
    return found


def test_every_requirement_has_a_lower_and_an_upper_bound():
    lists = _requirement_lists()
    assert lists.get("install_requires"), "install_requires found"
    for where, requirements in lists.items():
        for requirement in requirements:
            spec = requirement.split(";")[0]
            lower = re.search(r"(>=|>|~=|==)\s*\d", spec)
            upper = re.search(r"(<=|<|~=|==)\s*\d", spec)
            assert lower and upper, f"{where}: {requirement!r} needs both a lower and an upper bound"


# ------------------------------------------------------------------------------------------ unsafe evaluation
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__", "execfile", "input"}
UNSAFE_ATTRS = {("pickle", "load"), ("pickle", "loads"), ("marshal", "loads"), ("marshal", "load"),
                ("shelve", "open"), ("os", "system"), ("os", "popen"), ("dill", "loads"), ("jsonpickle", "decode")}


def test_package_never_evaluates_or_deserializes_untrusted_input_unsafely():
    problems = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
                problems += [f"{path.name}:{node.lineno} imports {m}" for m in modules
                             if m and m.split(".")[0] in ("pickle", "marshal", "shelve", "dill", "jsonpickle",
                                                          "subprocess", "yaml")]
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in UNSAFE_CALLS:
                problems.append(f"{path.name}:{node.lineno} calls {func.id}()")
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and \
                    (func.value.id, func.attr) in UNSAFE_ATTRS:
                problems.append(f"{path.name}:{node.lineno} calls {func.value.id}.{func.attr}()")
            if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                   for k in node.keywords):
                problems.append(f"{path.name}:{node.lineno} passes shell=")
    assert problems == []


@pytest.mark.parametrize("template", ["{stream.__class__.__init__.__globals__}", "{stream[0]}", "{0}", "{}",
                                      "{stream.upper}", "{namespace.__doc__}"])
def test_list_name_template_cannot_reach_python_objects(template):
    with pytest.raises(ConfigError):
        parse_config({"api_key": "k", "privacy_consent": True, "list_name_template": template})


def test_spec_marks_the_api_key_as_secret():
    spec = json.loads(Path(PACKAGE / "spec.json").read_text())["connectionSpecification"]["properties"]
    assert spec["api_key"]["airbyte_secret"] is True
