import asyncio

import pytest

from docora.deliver.targets import UnsafeTarget, check_target, normalize_base_url
from docora.net import RefusedAddress


def resolving_to(*addresses):
    async def resolver(host, port):
        return list(addresses)

    return resolver


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "0.0.0.0",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::1",
        "192.0.2.10",
    ],
)
async def test_non_public_addresses_are_refused(address):
    with pytest.raises(RefusedAddress):
        await check_target(
            "https://hooks.example.com/x", allow_private=False, resolver=resolving_to(address)
        )


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
async def test_public_addresses_pass(address):
    assert await check_target(
        "https://hooks.example.com", allow_private=False, resolver=resolving_to(address)
    ) == [address]


async def test_one_private_address_among_public_ones_is_enough_to_refuse():
    with pytest.raises(RefusedAddress):
        await check_target(
            "https://x.example.com",
            allow_private=False,
            resolver=resolving_to("93.184.216.34", "10.1.1.1"),
        )


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://2130706433/",
        "https://0x7f000001/",
        "https://0177.0.0.1/",
        "https://[::ffff:127.0.0.1]/",
        "https://0.0.0.0/",
    ],
)
async def test_literal_and_encoded_loopback_forms(url):
    # 2130706433 and 0x7f000001 and 0177.0.0.1 are what inet_aton reads as 127.0.0.1.
    async def resolver(host, port):
        import socket

        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [info[4][0] for info in infos]

    with pytest.raises(RefusedAddress):
        await check_target(url, allow_private=False, resolver=resolver)


async def test_unresolvable_host_is_refused():
    async def failing(host, port):
        raise OSError("no such host")

    with pytest.raises(RefusedAddress, match="must resolve to public addresses"):
        await check_target("https://nowhere.invalid", allow_private=False, resolver=failing)


async def test_private_targets_allowed_when_configured():
    assert await check_target(
        "http://127.0.0.1:8000", allow_private=True, resolver=resolving_to("127.0.0.1")
    )


@pytest.mark.parametrize(
    "text",
    [
        "http://example.com",
        "ftp://example.com",
        "https://",
        "https://u:p@example.com",
        "https://example.com/?q=1",
        "https://example.com/#f",
        "https://example.com:99999",
        "https://exa mple.com",
        "https://" + "a" * 2048,
    ],
)
def test_malformed_base_urls(text):
    with pytest.raises(UnsafeTarget):
        normalize_base_url(text, allow_private=False)


def test_trailing_slash_is_removed_and_http_needs_private_mode():
    assert normalize_base_url("https://example.com/hooks/", allow_private=False) == (
        "https://example.com/hooks"
    )
    assert normalize_base_url("http://localhost:1/x", allow_private=True) == "http://localhost:1/x"
