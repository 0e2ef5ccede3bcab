from docora.migrate import apply_migrations
from tests import pg


def test_migrations_are_idempotent_and_complete(server_url):
    url = pg.create_database(server_url)
    try:
        assert apply_migrations(url) >= 2
        assert apply_migrations(url) == 0
        import psycopg

        with psycopg.connect(url) as conn:
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                ).fetchall()
            }
        assert set(pg.PROJECT_TABLES) <= tables
        assert {"procrastinate_jobs", "procrastinate_periodic_defers"} <= tables
    finally:
        pg.drop_database(server_url, url)


def test_cascade_on_app_deletion(client, db, tmp_path):
    from tests.conftest import onboard
    from tests.gitrepo import GitRepo

    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("init", {"a": "a"})
    app_id, headers = onboard(client)
    rid = client.post("/api/repositories", json={"github_url": repo.url}, headers=headers).json()[
        "repository_id"
    ]
    db.execute(
        "INSERT INTO delivered_files (app_id, repository_id, path, sha) VALUES (%s, %s, 'a', 's')",
        (app_id, rid),
    )
    db.execute("DELETE FROM apps WHERE id = %s", (app_id,))
    assert db.execute("SELECT count(*) FROM watches").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM delivered_files").fetchone()[0] == 0
