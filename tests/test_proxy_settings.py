"""`proxy:` in hoody.yaml: defaults, URLs, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.core.errors import ConfigError
from reconciler.core.settings import ProxySettings, parse_settings


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_settings(yaml.safe_load(text), Path("/"), environ={})


def test_unset_means_no_proxy_and_defaults_when_set() -> None:
    assert parse("workers: 2\n").proxy is None
    p = parse("proxy: {}\n").proxy
    assert p == ProxySettings()
    assert (p.domain, p.listen, p.admin, p.tls) == ("localhost", "127.0.0.1:8088", None, "off")
    assert p.url("main-demo") == "http://main-demo.localhost:8088/"


def test_full_section_and_urls() -> None:
    p = parse(
        "proxy:\n  domain: preview.example.com\n  listen: ':443'\n"
        "  admin: unix//run/caddy/admin.sock\n  tls: acme\n  drain: 500ms\n"
    ).proxy
    assert p.domain == "preview.example.com" and p.tls == "acme" and p.drain == 0.5
    assert p.url("pr-42-shop") == "https://pr-42-shop.preview.example.com/"
    # YAML reads a bare `off` as false
    assert parse("proxy: {tls: off, listen: '127.0.0.1:80'}\n").proxy.url("a-b") == (
        "http://a-b.localhost/"
    )


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("proxy: {domian: x}\n", "proxy.domian", "unknown key"),
        ("proxy: {domain: 'a_b.com'}\n", "proxy.domain", "not a lower-case domain"),
        ("proxy: {domain: 'Example.com'}\n", "proxy.domain", "not a lower-case domain"),
        ("proxy: {listen: '8088'}\n", "proxy.listen", "host:port"),
        ("proxy: {listen: 'x:99999'}\n", "proxy.listen", "host:port"),
        ("proxy: {tls: 'on'}\n", "proxy.tls", "one of off, internal, acme"),
        ("proxy: {tls: yes}\n", "proxy.tls", "expected a string"),
        ("proxy: {admin: 'localhost:2019'}\n", "proxy.admin", "http://host:port"),
        ("proxy: {drain: soon}\n", "proxy.drain", "not a duration"),
    ],
)
def test_errors_name_the_key(text: str, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(text)
    assert e.value.path == path
    assert message in e.value.message
