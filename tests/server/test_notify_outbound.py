"""Where webhooks may point: public internet hosts only, unless the lab allow-lists one."""

import argparse
import ipaddress
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from server.models import StoreWebhook
from server.notify import outbound
from server.notify.cli import _webhook as webhook_command
from server.notify.outbound import OutboundPolicy, RefusedDestination
from server.settings import Settings
from tests.server.conftest import Lab

PUBLIC = "93.184.215.14"
NAMES = {
    "hooks.example": [PUBLIC],
    "inside.example": ["127.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": [PUBLIC, "10.0.0.5"],  # one public answer must not carry the other
    "rebound.example": ["::ffff:10.0.0.5"],
}
real_resolve = outbound.resolve


def fake_resolve(host: str, port: int) -> list[outbound.IPAddress]:
    """Made-up names from NAMES (the tests have no DNS); literals the real way."""
    if host in NAMES:
        return [ipaddress.ip_address(address) for address in NAMES[host]]
    if host.endswith(".example"):
        raise OSError("no such name")
    return real_resolve(host, port)


@pytest.fixture(autouse=True)
def made_up_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbound, "resolve", fake_resolve)


REFUSED = [
    "https://127.0.0.1/hook",
    "https://127.1.2.3/hook",
    "https://localhost/hook",
    "https://LocalHost./hook",
    "https://api.localhost/hook",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://2130706433/hook",  # 127.0.0.1 in decimal
    "https://0177.0.0.1/hook",  # and in octal
    "https://0x7f.1/hook",
    "https://0.0.0.0/hook",
    "https://[::]/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://[fe80::1]/hook",
    "https://10.0.0.1/hook",
    "https://172.16.0.1/hook",
    "https://192.168.1.1/hook",
    "https://100.64.0.1/hook",  # CGNAT
    "https://[fc00::1]/hook",
    "https://[fd12:3456::1]/hook",
    "https://224.0.0.1/hook",
    "https://[ff02::1]/hook",
    "https://240.0.0.1/hook",
    "https://255.255.255.255/hook",
    "https://[2002:7f00:1::1]/hook",  # 6to4 wrapping 127.0.0.1
    "https://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
    "https://inside.example/hook",
    "https://metadata.example/hook",
    "https://mixed.example/hook",
    "https://rebound.example/hook",
    "https://nowhere.example/hook",  # does not resolve: told like the others
    "http://hooks.example/hook",  # plain http is off by default
]


async def test_every_inside_address_is_refused_at_registration_naming_url(
    lab: Lab, client: httpx.AsyncClient
) -> None:
    await lab.log_in(client, "north", "demo-store-pass")
    for url in REFUSED:
        response = await client.post("/api/stores/me/webhooks", json={"url": url})
        assert response.status_code == 422, url
        assert response.json()["detail"][0]["field"] == "url", url
    with lab.context.db.session() as session:
        assert session.scalars(select(StoreWebhook)).all() == []
    allowed = await client.post("/api/stores/me/webhooks", json={"url": "https://hooks.example/x"})
    assert allowed.status_code == 201, allowed.text


def test_unresolvable_and_internal_names_are_refused_in_the_same_words() -> None:
    policy = OutboundPolicy.from_settings(Settings())
    messages = set()
    for url in ("https://nowhere.example/", "https://inside.example/", "https://10.0.0.1/"):
        with pytest.raises(RefusedDestination) as refused:
            outbound.check(url, policy)
        messages.add(refused.value.message)
    assert len(messages) == 1


async def test_the_allow_list_admits_named_hosts_and_networks(
    lab: Lab, client: httpx.AsyncClient
) -> None:
    lab.context.settings = lab.context.settings.model_copy(
        update={
            "webhook_allow_http": True,
            "webhook_allowed_hosts": ["inside.example", "10.0.0.0/8", "::1"],
        }
    )
    await lab.log_in(client, "manager", "demo-manager-pass")
    for url in (
        "http://inside.example:8080/hook",
        "https://10.1.2.3/hook",
        "https://mixed.example/hook",  # its private address is now in an allowed network
        "https://rebound.example/hook",  # ::ffff:10.0.0.5 is 10.0.0.5
        "http://[::1]:9000/hook",
        "http://hooks.example/hook",
    ):
        response = await client.post("/api/stores/NORTH/webhooks", json={"url": url})
        assert response.status_code == 201, (url, response.text)
    for url in ("https://127.0.0.1/hook", "https://192.168.1.1/hook", "https://localhost/"):
        response = await client.post("/api/stores/NORTH/webhooks", json={"url": url})
        assert response.status_code == 422, url


def test_the_checked_address_is_connected_to_under_the_hosts_name() -> None:
    destination = outbound.check(
        "https://Hooks.Example:8443/in?x=1", OutboundPolicy.from_settings(Settings())
    )
    assert str(destination.pinned_url) == f"https://{PUBLIC}:8443/in?x=1"
    assert destination.headers == {"Host": "hooks.example:8443", "Connection": "close"}
    assert destination.extensions == {"sni_hostname": "hooks.example"}  # TLS checks the name


def test_an_allow_list_entry_that_is_neither_host_nor_network_is_refused() -> None:
    with pytest.raises(ValueError, match="webhook_allowed_hosts"):
        Settings(webhook_allowed_hosts=["10.0.0.0/33"])
    with pytest.raises(ValueError, match="webhook_allowed_hosts"):
        Settings(webhook_allowed_hosts=["two words"])


def test_the_webhook_command_refuses_an_inside_address_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LENSTRACK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LENSTRACK_SETTINGS_FILE", str(tmp_path / "no-settings.toml"))
    args = argparse.Namespace(
        webhook_command="add",
        store="NORTH",
        url="https://10.0.0.1/hook",
        secret=None,
        kinds="job_ready",
    )
    assert webhook_command(args) == 1
    assert "error: url: must name a host on the public internet" in capsys.readouterr().err
