"""The embedded PostgreSQL launcher (app/db/embedded.py), against the real bundled server.

Each test gets its own data directory (initdb takes about a second); servers are always stopped.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from app.db import embedded
from app.db.embedded import SYSTEM_USER, EmbeddedPostgres, EmbeddedPostgresError, port_is_free

ROOT = Path(__file__).resolve().parents[1]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def postmasters(pgdata: Path) -> list[int]:
    """Live postmasters whose data directory is pgdata (backends are their children)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] != "postgres" or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if Path(proc.cwd()).resolve() != pgdata.resolve():
                continue
            parent = proc.parent()
            if parent is None or parent.name() != "postgres":
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture
def servers():
    """Stops every EmbeddedPostgres a test registers, even when the test fails half-way."""
    started: list[EmbeddedPostgres] = []
    yield started
    for pg in reversed(started):
        pg.stop()


def test_start_stop_and_second_start_reuses_the_data(tmp_path, servers):
    pg = EmbeddedPostgres(tmp_path)
    servers.append(pg)
    url = pg.start()
    assert url == f"postgresql://postgres@127.0.0.1:{pg.port}/promptstudio"
    assert pg.url == url and not pg.reused
    pgdata = tmp_path / "pgdata"
    assert (pgdata / "PG_VERSION").read_text().strip() == "18"
    assert (tmp_path / "postgresql.log").exists()
    assert postmasters(pgdata) == [pg.pid]

    row = pg.psql("SELECT datcollate, datctype, pg_encoding_to_char(encoding) FROM pg_database "
                  "WHERE datname = current_database()")
    assert row.strip() == "C.UTF-8|C.UTF-8|UTF8"
    assert pg.psql("SHOW listen_addresses").strip() == "127.0.0.1"
    assert pg.psql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").strip() == "t"
    # The extensions the migrations enable are in this build.
    pg.psql("CREATE EXTENSION IF NOT EXISTS vector; CREATE EXTENSION IF NOT EXISTS pg_trgm;"
            "CREATE TABLE kept (embedding vector(3), note text);"
            "INSERT INTO kept VALUES ('[1,2,3]', 'still here')")
    assert pg.psql("SELECT round((embedding <-> '[1,2,4]')::numeric, 3) FROM kept").strip() == "1.000"
    assert float(pg.psql("SELECT similarity('prompt', 'prompts')")) > 0.5

    pid, port = pg.pid, pg.port
    pg.stop()
    assert not alive(pid)
    assert not (pgdata / "postmaster.pid").exists()
    assert port_is_free(port)
    with pytest.raises(EmbeddedPostgresError, match="not started"):
        pg.url
    pg.stop()  # idempotent

    again = EmbeddedPostgres(tmp_path)
    servers.append(again)
    again.start()
    assert not again.reused
    assert again.port == port  # the port chosen at the first start is kept while it is free
    assert again.pid != pid
    assert again.psql("SELECT note FROM kept").strip() == "still here"
    again.stop()
    assert postmasters(pgdata) == []


def test_leftover_server_of_a_killed_process_is_reused_then_stopped(tmp_path, servers):
    script = (
        "import sys, time\n"
        "from app.db.embedded import EmbeddedPostgres\n"
        "pg = EmbeddedPostgres(sys.argv[1])\n"
        "print(pg.start(), pg.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
    finally:
        child.kill()  # SIGKILL: no cleanup runs in the child
        child.wait(10)
        child.stdout.close()
    url, pid = line.split()
    pid = int(pid)
    pgdata = tmp_path / "pgdata"
    assert alive(pid), "the server outlives the process that started it"
    assert (pgdata / "postmaster.pid").exists()

    pg = EmbeddedPostgres(tmp_path)
    servers.append(pg)
    assert pg.start() == url
    assert pg.reused and pg.pid == pid
    assert postmasters(pgdata) == [pid], "no second postmaster"
    assert pg.psql("SELECT 1").strip() == "1"

    pg.stop()  # the last user stops it, although another process started it
    assert not alive(pid)
    assert postmasters(pgdata) == []


@pytest.mark.parametrize("holder", ["dead process", "live process that is not postgres"])
def test_stale_postmaster_pid_is_cleared(tmp_path, servers, holder):
    pg = EmbeddedPostgres(tmp_path)
    servers.append(pg)
    pg.start()
    pg.stop()
    other = subprocess.Popen(["sleep", "60"])
    try:
        if holder == "dead process":
            other.kill()
            other.wait()
        pidfile = tmp_path / "pgdata" / "postmaster.pid"
        pidfile.write_text(f"{other.pid}\n{tmp_path / 'pgdata'}\n1700000000\n5432\n\n127.0.0.1\n  1  2\nready\n")
        pg.start()
        assert not pg.reused
        assert pg.pid != other.pid and alive(pg.pid)
        assert int(pidfile.read_text().splitlines()[0]) == pg.pid
        assert pg.psql("SELECT 1").strip() == "1"
    finally:
        other.kill()
        other.wait()
    pg.stop()


def test_two_users_of_one_data_dir_share_the_server_and_the_last_stops_it(tmp_path, servers):
    first = EmbeddedPostgres(tmp_path, server_settings={"fsync": False})
    second = EmbeddedPostgres(tmp_path)
    servers.extend([first, second])
    first.start()
    assert first.psql("SHOW fsync").strip() == "off"
    with second:
        assert second.reused and second.pid == first.pid and second.url == first.url
        first.stop()
        assert alive(second.pid), "a server still in use is left running"
        assert second.psql("SELECT 1").strip() == "1"
        pid = second.pid
    assert not alive(pid)


def test_an_explicit_port_in_use_is_a_clear_error(tmp_path, servers):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        pg = EmbeddedPostgres(tmp_path, port=port)
        with pytest.raises(EmbeddedPostgresError, match=f"port {port} on 127.0.0.1 is already in use"):
            pg.start()
        assert postmasters(tmp_path / "pgdata") == []

        # Without an explicit port the remembered one is skipped while it is taken.
        (tmp_path / "pgdata" / "promptstudio.conf").write_text(f"port = {port}\n")
        moved = EmbeddedPostgres(tmp_path)
        servers.append(moved)
        moved.start()
        assert moved.port != port
    moved.stop()


def test_initdb_failure_shows_its_output_and_leaves_no_half_cluster(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "LOCALE", "xx_NOWHERE.UTF-8")
    with pytest.raises(EmbeddedPostgresError, match="initdb failed") as info:
        EmbeddedPostgres(tmp_path).start()
    assert "xx_NOWHERE" in str(info.value)  # initdb's own words about the locale
    assert not (tmp_path / "pgdata").exists()
    assert not (tmp_path / "pgdata.initdb").exists()
    assert "xx_NOWHERE" in (tmp_path / "postgresql.log").read_text()


def test_a_data_dir_that_cannot_be_created_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(EmbeddedPostgresError, match="cannot create the data directory"):
        EmbeddedPostgres(blocker / "data").start()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_data_dir_is_a_clear_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o500)
    try:
        with pytest.raises(EmbeddedPostgresError, match="not writable"):
            EmbeddedPostgres(data).start()
    finally:
        data.chmod(0o700)


def test_bad_arguments_are_refused():
    with pytest.raises(EmbeddedPostgresError, match="database name"):
        EmbeddedPostgres(Path("unused"), database="bad name; DROP")
    with pytest.raises(EmbeddedPostgresError, match="out of range"):
        EmbeddedPostgres(Path("unused"), port=70000)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to a system user")
def test_under_root_the_server_runs_as_a_system_user(tmp_path, servers):
    pg = EmbeddedPostgres(tmp_path)
    servers.append(pg)
    pg.start()
    assert psutil.Process(pg.pid).username() == SYSTEM_USER
    import pwd

    assert pwd.getpwuid((tmp_path / "pgdata").stat().st_uid).pw_name == SYSTEM_USER
    assert (tmp_path / "pgdata").stat().st_mode & 0o777 == 0o700
