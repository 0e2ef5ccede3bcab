import re
import shutil

import psycopg
import pytest
from yoyo import get_backend, read_migrations

from docora.migrate import (
    SCRIPT_PREFIX,
    SchemaError,
    apply_migrations,
    check_schema,
    legacy_applied,
    migrations_dir,
    pending_migrations,
    procrastinate_migrations,
    procrastinate_scripts_dir,
    yoyo_url,
)
from tests import pg
from tests.test_cli import docora

CATALOG = """
SELECT 'fn ' || p.oid::regprocedure::text || ' ' || md5(p.prosrc) FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
UNION ALL
SELECT 'col ' || table_name || '.' || column_name || ' ' || data_type
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'idx ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'trg ' || tgname FROM pg_trigger WHERE NOT tgisinternal
ORDER BY 1
"""


@pytest.fixture
def fresh_url(server_url):
    url = pg.create_database(server_url)
    yield url
    pg.drop_database(server_url, url)


def catalog(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(CATALOG)]


def recorded_scripts(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM _yoyo_migration WHERE migration_id LIKE %s",
            (SCRIPT_PREFIX + "%",),
        ).fetchone()[0]


def forget_scripts(url: str) -> None:
    """What a database migrated by the previous Docora looks like: baseline, no records."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM _yoyo_migration WHERE migration_id LIKE %s", (SCRIPT_PREFIX + "%",)
        )


def test_migrations_are_idempotent_and_complete(fresh_url):
    assert apply_migrations(fresh_url) >= 2
    assert apply_migrations(fresh_url) == 0
    with psycopg.connect(fresh_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        }
    assert set(pg.PROJECT_TABLES) <= tables
    assert {"procrastinate_jobs", "procrastinate_periodic_defers"} <= tables


def test_a_new_database_records_the_scripts_its_baseline_holds(fresh_url):
    assert pending_migrations(fresh_url)  # nothing applied yet
    apply_migrations(fresh_url)
    assert recorded_scripts(fresh_url) == len(procrastinate_migrations()) > 30
    assert pending_migrations(fresh_url) == []
    check_schema(fresh_url)


def test_a_database_from_before_recording_is_adopted_unchanged(fresh_url):
    apply_migrations(fresh_url)
    forget_scripts(fresh_url)
    before = catalog(fresh_url)
    with pytest.raises(SchemaError, match="docora migrate"):
        check_schema(fresh_url)  # services refuse to start until migrate has run
    assert apply_migrations(fresh_url) == 0  # recorded, nothing re-run
    assert recorded_scripts(fresh_url) == len(procrastinate_migrations())
    assert catalog(fresh_url) == before
    check_schema(fresh_url)


def test_legacy_probes_read_which_scripts_a_schema_holds(fresh_url):
    apply_migrations(fresh_url)
    scripts = procrastinate_migrations()
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        cursor = conn.cursor()
        assert legacy_applied(cursor, scripts) == list(scripts)
        # Take back what 3.4 added: the schema now reads as 3.3's.
        conn.execute("DROP FUNCTION procrastinate_retry_job_v2")
        conn.execute(
            "CREATE OR REPLACE FUNCTION procrastinate_trigger_function_status_events_update_v1()"
            " RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"
        )
        held = {s.version for s in legacy_applied(cursor, scripts)}
    assert "03.03.00_01_pre_priority_lock_fetch_job" in held
    assert not any(v.startswith("03.04.") for v in held)
    assert "02.06.00_01_add_cancel_states" in held


def test_a_later_procrastinate_release_brings_scripts_that_run(fresh_url, tmp_path):
    apply_migrations(fresh_url)
    scripts = tmp_path / "procrastinate-next"
    shutil.copytree(procrastinate_scripts_dir(), scripts, ignore=shutil.ignore_patterns("*.py"))
    (scripts / "03.99.00_01_pre_docora_upgrade_test.sql").write_text(
        "CREATE FUNCTION docora_upgrade_marker() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n"
        "COMMENT ON FUNCTION docora_upgrade_marker() IS 'one; two';\n"
    )
    with pytest.raises(SchemaError, match=re.escape("03.99.00_01_pre_docora_upgrade_test")):
        check_schema(fresh_url, procrastinate_scripts=scripts)
    assert apply_migrations(fresh_url, procrastinate_scripts=scripts) == 1
    with psycopg.connect(fresh_url) as conn:
        assert conn.execute("SELECT docora_upgrade_marker()").fetchone()[0] == 1
    assert apply_migrations(fresh_url, procrastinate_scripts=scripts) == 0
    check_schema(fresh_url, procrastinate_scripts=scripts)


def test_services_refuse_a_database_that_lags(fresh_url, encryption_key):
    result = docora("worker", env={"DATABASE_URL": fresh_url, "ENCRYPTION_KEY": encryption_key})
    assert result.returncode == 2
    assert "schema is behind" in result.stderr and "docora migrate" in result.stderr
    assert result.stderr.strip().count("\n") == 0


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


def test_watch_counters_are_filled_in_for_watches_that_existed(fresh_url):
    """Migration 0005 counts what older databases hold: delivered files, and what each
    watch lacks of its repository's snapshot."""
    apply_migrations(fresh_url)
    backend = get_backend(yoyo_url(fresh_url))
    counters = [m for m in read_migrations(str(migrations_dir())) if m.id == "0005.watch-counters"]
    with backend.lock():
        backend.rollback_migrations(counters)
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO apps (id, name, base_url, email, token_digest, client_auth_key_enc)"
            " SELECT 'app_' || repeat(c, 24), c, 'https://h.example', 'a@example.com',"
            "  sha256(c::bytea), '\\x00' FROM unnest(ARRAY['a', 'b']) c"
        )
        conn.execute(
            "INSERT INTO repositories (id, url, host, owner, name, branch) VALUES"
            " ('repo_' || repeat('1', 24), 'https://g.example/o/one', 'g.example', 'o', 'one',"
            "  'main'),"
            " ('repo_' || repeat('2', 24), 'https://g.example/o/two', 'g.example', 'o', 'two',"
            "  'main')"
        )
        conn.execute(
            "INSERT INTO watches (app_id, repository_id)"
            " SELECT 'app_' || repeat(c, 24), 'repo_' || repeat(r, 24)"
            " FROM unnest(ARRAY['a', 'b']) c, unnest(ARRAY['1', '2']) r"
        )
        one = "repo_" + "1" * 24
        conn.execute("INSERT INTO snapshots (repository_id, commit_sha) VALUES (%s, 'c')", (one,))
        conn.execute(
            "INSERT INTO snapshot_files (repository_id, path, sha, size, blob_id, is_binary)"
            " SELECT %s, p, p, 1, p, false FROM unnest(ARRAY['x', 'y', 'z']) p",
            (one,),
        )
        conn.execute(
            "INSERT INTO delivered_files (app_id, repository_id, path, sha) VALUES"
            " (%(a)s, %(r)s, 'x', 'x'), (%(a)s, %(r)s, 'y', 'old'), (%(a)s, %(r)s, 'gone', 'g')",
            {"a": "app_" + "a" * 24, "r": one},
        )
    apply_migrations(fresh_url)
    with psycopg.connect(fresh_url) as conn:
        rows = conn.execute(
            "SELECT left(app_id, 5), left(repository_id, 6), files_delivered, pending_changes"
            " FROM watches ORDER BY 1, 2"
        ).fetchall()
    assert rows == [
        ("app_a", "repo_1", 3, 3),  # y changed, z new, gone deleted
        ("app_a", "repo_2", 0, None),  # no snapshot yet
        ("app_b", "repo_1", 0, 3),
        ("app_b", "repo_2", 0, None),
    ]
