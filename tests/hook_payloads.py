"""Push payloads shaped like each provider's documented ones (trimmed to the fields a
receiver reads, plus enough around them to look like the real thing)."""

from __future__ import annotations

import json


def github_push(clone_url: str, ref: str = "refs/heads/main", deleted: bool = False) -> bytes:
    name = clone_url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]
    return json.dumps(
        {
            "ref": ref,
            "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after": "0000000000000000000000000000000000000000"
            if deleted
            else "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5",
            "created": False,
            "deleted": deleted,
            "forced": False,
            "repository": {
                "id": 186853002,
                "name": name,
                "full_name": f"octo-org/{name}",
                "private": False,
                "html_url": clone_url.removesuffix(".git"),
                "clone_url": clone_url,
                "default_branch": "main",
            },
            "pusher": {"name": "octocat", "email": "octocat@github.com"},
            "sender": {"login": "octocat", "id": 1},
            "commits": [],
            "head_commit": None,
        }
    ).encode()


GITHUB_PING = json.dumps(
    {"zen": "Keep it logically awesome.", "hook_id": 30, "hook": {"type": "Repository"}}
).encode()


def gitlab_push(http_url: str, ref: str = "refs/heads/main") -> bytes:
    return json.dumps(
        {
            "object_kind": "push",
            "event_name": "push",
            "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
            "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            "ref": ref,
            "user_username": "jsmith",
            "project_id": 15,
            "project": {
                "id": 15,
                "name": "Diaspora",
                "web_url": http_url.removesuffix(".git"),
                "git_http_url": http_url,
                "path_with_namespace": "mike/diaspora",
                "default_branch": "main",
            },
            "commits": [],
            "total_commits_count": 4,
        }
    ).encode()


def gitea_push(clone_url: str, ref: str = "refs/heads/main") -> bytes:
    return json.dumps(
        {
            "ref": ref,
            "before": "28e1879d029cb852e4844d9c718537df08844e03",
            "after": "bffeb74224043ba2feb48d137756c8a9331c449a",
            "compare_url": "http://localhost:3000/gitea/webhooks/compare/28e1879...bffeb74",
            "commits": [],
            "repository": {
                "id": 140,
                "name": "webhooks",
                "full_name": "gitea/webhooks",
                "html_url": clone_url.removesuffix(".git"),
                "clone_url": clone_url,
                "default_branch": "main",
            },
            "pusher": {"login": "gitea"},
            "sender": {"login": "gitea"},
        }
    ).encode()


def bitbucket_push(full_name: str, branches: list[str], deleted: str | None = None) -> bytes:
    changes = [
        {
            "new": {
                "type": "branch",
                "name": branch,
                "target": {"hash": "709d658dc5b6d6afcd46049c2f332ee3f515a67d"},
            },
            "old": {
                "type": "branch",
                "name": branch,
                "target": {"hash": "1e65c05c1d5171631d92438a13901ca7dae9618c"},
            },
            "created": False,
            "closed": False,
        }
        for branch in branches
    ]
    if deleted:
        changes.append({"new": None, "old": {"type": "branch", "name": deleted}, "closed": True})
    changes.append({"new": {"type": "tag", "name": "v1.0"}, "old": None})
    return json.dumps(
        {
            "actor": {"display_name": "Emma", "type": "user"},
            "repository": {
                "type": "repository",
                "full_name": full_name,
                "name": full_name.split("/")[-1],
                "links": {"html": {"href": f"https://bitbucket.org/{full_name}"}},
            },
            "push": {"changes": changes},
        }
    ).encode()
