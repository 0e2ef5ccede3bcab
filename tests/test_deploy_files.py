"""No container engine runs here: check the deployment files' structure instead."""

from pathlib import Path

import yaml

from docora.config import ENV_NAMES

ROOT = Path(__file__).resolve().parents[1]


def test_compose_has_postgres_migrate_api_worker_and_no_redis():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker"}
    assert "redis" not in (ROOT / "compose.yaml").read_text().lower()
    assert "healthcheck" in services["postgres"]
    assert compose["volumes"].keys() >= {"pgdata", "repos"}
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        service = services[name]
        assert service["command"] == [name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["env_file"] == ".env" and service["image"] == services["migrate"]["image"]
    assert "/data/repos" in services["worker"]["volumes"][0]


def test_containerfile_is_slim_nonroot_with_git():
    text = (ROOT / "Containerfile").read_text()
    assert text.startswith("#") and "FROM python:3.12-slim" in text
    assert "git" in text and "apt-get install" in text
    assert "USER docora" in text
    assert 'VOLUME ["/data/repos"]' in text
    assert 'ENTRYPOINT ["docora"]' in text
    assert text.index("USER docora") < text.index("ENTRYPOINT")


def test_env_example_lists_every_setting():
    text = (ROOT / ".env.example").read_text()
    names = {
        line.split("=", 1)[0].lstrip("# ").strip() for line in text.splitlines() if "=" in line
    }
    assert set(ENV_NAMES) <= names


def test_alert_rules_are_well_formed_and_use_real_metrics():
    import re

    from tests.test_metrics import API_NAMES

    rules = yaml.safe_load((ROOT / "docs" / "alerts.yml").read_text())["groups"][0]["rules"]
    assert len(rules) >= 5
    known = {f"{n}_total" for n in API_NAMES} | API_NAMES | {"up"}
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"\d+[smh]", rule["for"]) and rule["labels"]["severity"]
        used = set(re.findall(r"\b(docora_[a-z_]+|up)\b", rule["expr"]))
        assert used and used <= known, (rule["alert"], used - known)


def test_the_container_logs_json():
    assert "LOG_FORMAT=json" in (ROOT / "Containerfile").read_text()
