import pytest

from tests.tools import require_tool

ABSENT = "docora-no-such-tool-0f3a"


def test_a_missing_tool_fails_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=ABSENT):
        require_tool(ABSENT, "how to get it")


def test_a_missing_tool_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="how to get it"):
        require_tool(ABSENT, "how to get it")


def test_a_present_tool_is_found():
    assert require_tool("git", "apt-get install git").endswith("git")
