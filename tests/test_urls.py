import pytest

from docora.git.urls import (
    InvalidRepositoryUrl,
    InvalidToken,
    check_branch,
    check_token,
    on_domain,
    parse_repository_url,
)


@pytest.mark.parametrize(
    ("text", "url", "owner", "name"),
    [
        ("https://github.com/owner/repo", "https://github.com/owner/repo", "owner", "repo"),
        ("https://github.com/owner/repo.git", "https://github.com/owner/repo", "owner", "repo"),
        ("https://github.com/owner/repo/", "https://github.com/owner/repo", "owner", "repo"),
        ("https://GitHub.COM/Owner/Repo.git/", "https://github.com/Owner/Repo", "Owner", "Repo"),
        (
            "https://github.com/my.org/my.repo_x-1",
            "https://github.com/my.org/my.repo_x-1",
            "my.org",
            "my.repo_x-1",
        ),
        (
            "https://gitlab.example.com/group/sub/project.git",
            "https://gitlab.example.com/group/sub/project",
            "group/sub",
            "project",
        ),
        (
            "https://git.example.com:8443/team/app",
            "https://git.example.com:8443/team/app",
            "team",
            "app",
        ),
    ],
)
def test_accepted_urls_are_normalized(text, url, owner, name):
    repo = parse_repository_url(text, allow_local=False)
    assert (repo.url, repo.owner, repo.name) == (url, owner, name)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "github.com/owner/repo",
        "http://github.com/owner/repo",
        "ssh://git@github.com/owner/repo",
        "git@github.com:owner/repo.git",
        "https://user:pass@github.com/owner/repo",
        "https://token@github.com/owner/repo",
        "https://github.com/owner/repo?x=1",
        "https://github.com/owner/repo#frag",
        "https://github.com/owner",
        "https://github.com/owner/repo/tree/main",
        "https://github.com/owner/../repo",
        "https://github.com/owner/-repo",
        "ext::sh -c touch% /tmp/pwned",
        "--upload-pack=touch /tmp/pwned",
        "-c core.sshCommand=x",
        "https://github.com/owner/repo\nhttps://evil",
        "https://github.com/owner/re po",
        "https://github.com/owner/repo;rm",
        "file:///tmp/repo",
        "/tmp/repo",
        "https://" + "a" * 2050 + ".com/x/y",
    ],
)
def test_rejected_urls(text):
    with pytest.raises(InvalidRepositoryUrl):
        parse_repository_url(text, allow_local=False)


def test_local_forms_only_when_allowed():
    repo = parse_repository_url("/tmp/x/project.git", allow_local=True)
    assert repo.url == "file:///tmp/x/project.git" and repo.name == "project" and repo.owner == "x"
    assert parse_repository_url("file:///tmp/x/project.git/", allow_local=True).url == (
        "file:///tmp/x/project.git"
    )
    assert (
        parse_repository_url("http://127.0.0.1:8000/a/b", allow_local=True).host == "127.0.0.1:8000"
    )
    for bad in ("file://remote-host/x", "file:///tmp/../etc", "relative/path"):
        with pytest.raises(InvalidRepositoryUrl):
            parse_repository_url(bad, allow_local=True)


def test_tokens():
    github = parse_repository_url("https://github.com/a/b", allow_local=False)
    gitea = parse_repository_url("https://git.example.com/a/b", allow_local=False)
    for token in ("ghp_x", "github_pat_x", "gho_x", "ghs_x", "ghu_x", "ghr_x", "glpat-x"):
        assert check_token(token, github) == token
    assert check_token("anything", gitea) == "anything"
    for bad, repo in (
        ("plain", github),
        ("", gitea),
        ("a b", gitea),
        ("x\ny", gitea),
        ("t" * 256, gitea),
    ):
        with pytest.raises(InvalidToken) as info:
            check_token(bad, repo)
        assert bad not in str(info.value) or bad == ""


@pytest.mark.parametrize("branch", ["main", "release/1.2", "feature_x-y"])
def test_valid_branches(branch):
    assert check_branch(branch) == branch


@pytest.mark.parametrize("branch", ["-x", "a..b", "a b", "a~1", "x.lock", "/a", "a/", "@", "a@{1}"])
def test_invalid_branches(branch):
    with pytest.raises(InvalidRepositoryUrl):
        check_branch(branch)


@pytest.mark.parametrize(
    ("host", "domain", "expected"),
    [
        ("github.com", "github.com", True),
        ("api.github.com", "github.com", True),
        ("GitHub.com.", "github.com", True),
        ("github.com:443", "github.com", True),
        ("evilgithub.com", "github.com", False),
        ("github.com.evil.net", "github.com", False),
        ("gitlab.com", "gitlab.com", True),
        ("mygitlab.com", "gitlab.com", False),
        ("gitlab.example.com", "gitlab.com", False),
        ("bitbucket.org", "bitbucket.org", True),
        ("notbitbucket.org", "bitbucket.org", False),
    ],
)
def test_host_names_compare_dot_bounded(host, domain, expected):
    assert on_domain(host, domain) is expected
