import pytest

from docora.config import ENV_NAMES, ConfigError, load_settings

KEY = "ab" * 32


def test_defaults_match_the_spec():
    s = load_settings({})
    assert (s.host, s.port, s.log_level) == ("0.0.0.0", 3000, "info")
    assert s.scan_interval_ms == 60_000 and s.rescan_interval_ms == 300_000
    assert s.scan_concurrency == 5 and s.max_retry_attempts == 5
    assert s.circuit_breaker_threshold == 5 and s.circuit_breaker_cooldown_ms == 1_800_000
    assert s.binary_chunk_threshold_bytes == 1_048_576 and s.binary_chunk_size_bytes == 524_288
    assert s.delivery_timeout_ms == 30_000 and s.git_timeout_ms == 300_000
    assert s.max_file_size_bytes == 100 * 1024 * 1024
    assert s.allow_local_repositories is False and s.allow_private_webhook_targets is False


def test_every_spec_variable_is_a_setting():
    spec = [
        "DATABASE_URL",
        "ENCRYPTION_KEY",
        "ADMIN_TOKEN",
        "HOST",
        "PORT",
        "LOG_LEVEL",
        "CORS_ORIGIN",
        "REPOS_BASE_PATH",
        "SCAN_INTERVAL_MS",
        "RESCAN_INTERVAL_MS",
        "SCAN_CONCURRENCY",
        "MAX_RETRY_ATTEMPTS",
        "RETRY_BASE_DELAY_MS",
        "CIRCUIT_BREAKER_THRESHOLD",
        "CIRCUIT_BREAKER_COOLDOWN_MS",
        "BINARY_CHUNK_THRESHOLD_BYTES",
        "BINARY_CHUNK_SIZE_BYTES",
        "DELIVERY_TIMEOUT_MS",
        "MAX_FILE_SIZE_BYTES",
        "GIT_TIMEOUT_MS",
        "ALLOW_LOCAL_REPOSITORIES",
        "ALLOW_PRIVATE_WEBHOOK_TARGETS",
        "TRUSTED_PROXIES",
    ]
    assert set(spec) <= set(ENV_NAMES)


def test_values_are_converted_from_strings():
    s = load_settings(
        {
            "PORT": "8080",
            "ALLOW_LOCAL_REPOSITORIES": "true",
            "LOG_LEVEL": "WARN",
            "TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
            "ENCRYPTION_KEY": KEY,
        }
    )
    assert s.port == 8080 and s.allow_local_repositories is True and s.log_level == "warning"
    assert len(s.trusted_proxy_networks) == 2
    assert s.key_bytes == bytes.fromhex(KEY)


def test_empty_values_mean_default():
    assert load_settings({"PORT": "", "LOG_LEVEL": " "}).port == 3000


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"SCAN_CONCURRENCY": "0"}, "SCAN_CONCURRENCY"),
        ({"ALLOW_LOCAL_REPOSITORIES": "maybe"}, "ALLOW_LOCAL_REPOSITORIES"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
        ({"ENCRYPTION_KEY": "too-short"}, "ENCRYPTION_KEY"),
        ({"ENCRYPTION_KEY": "zz" * 32}, "ENCRYPTION_KEY"),
        ({"TRUSTED_PROXIES": "not-an-ip"}, "TRUSTED_PROXIES"),
        ({"ADMIN_TOKEN": "short"}, "ADMIN_TOKEN"),
        ({"BINARY_CHUNK_SIZE_BYTES": "1001"}, "BINARY_CHUNK_SIZE_BYTES"),
        ({"GIT_TIMEOUT_MS": "-5"}, "GIT_TIMEOUT_MS"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_variable(env, named):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    message = str(info.value)
    assert named in message and "\n" not in message


def test_encryption_key_message_is_the_documented_one():
    with pytest.raises(
        ConfigError, match="ENCRYPTION_KEY must be 64 hex chars or base64 of 32 bytes"
    ):
        load_settings({"ENCRYPTION_KEY": "nope"})


def test_required_variables():
    with pytest.raises(ConfigError, match="ENCRYPTION_KEY is required"):
        load_settings({}, require=("ENCRYPTION_KEY",))
    with pytest.raises(ConfigError, match="ENCRYPTION_KEY is required"):
        _ = load_settings({}).key_bytes


def test_every_setting_is_read_by_the_service():
    """A setting nothing reads would let an operator believe it does something."""
    import re
    from pathlib import Path

    import msgspec

    import docora
    from docora.config import Settings

    root = Path(docora.__file__).parent
    sources = "\n".join(p.read_text() for p in root.rglob("*.py") if p.name != "config.py")
    config = (root / "config.py").read_text()
    unread = [
        f.name
        for f in msgspec.structs.fields(Settings)
        if not re.search(rf"\.{f.name}\b", sources) and not re.search(rf"self\.{f.name}\b", config)
    ]
    assert unread == []
