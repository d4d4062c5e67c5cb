"""`python -m node --config node.toml` runs a node; `python -m node create-user NAME --admin`
makes an account from the command line (password from stdin or a prompt);
`python -m node approve-user NAME` approves a sign-up waiting for approval;
`migrate` brings the database to this code's schema (a node also does at start-up);
`backup PATH [--with-files]` copies the data while the node runs; `restore PATH` puts a
backup back (the node stopped)."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import sys
from typing import TYPE_CHECKING

from node.config import Config, ConfigError, load_config
from node.store.lock import DataDirLock

if TYPE_CHECKING:
    import sqlite_utils


def _prepare_storage(config: Config) -> DataDirLock | None:
    """Before serving: hold the data dir (one node per data dir), check the database file
    (PRAGMA quick_check) and migrate it; stop with a clear message if any of it fails."""
    from node.store.database import close_database, open_database
    from node.store.errors import StoreError

    try:
        # Held for the life of the process; the kernel drops it when the process ends.
        lock = DataDirLock(config.data_path, f"node {config.node.base_url}").acquire()
        close_database(open_database(config.data_path, check=True))
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    return lock


def _serve(config: Config) -> int:
    import uvicorn

    from node.web.app import create_app
    from node.web.connections import http_protocol

    lock = _prepare_storage(config)
    if lock is None:
        return 1
    app = create_app(config)
    print(f"Parley node starting: open {config.node.base_url}/", flush=True)
    print(f"  data: {config.data_path}", flush=True)
    # node.media.ice wraps the running loop's create_datagram_endpoint to honour
    # [media] udp_port_min/max; both loops allow that (uvloop's Loop has an instance dict).
    uvicorn.run(
        app,
        host=config.node.host,
        port=config.node.port,
        loop=config.node.event_loop,
        # The parser's protocol, made to tell requests their connection (node.web.connections).
        http=http_protocol(config.node.http_parser),
        log_level="info",
        # X-Forwarded-* only from [node] trusted_proxies (uvicorn takes the rightmost
        # untrusted address of X-Forwarded-For); otherwise the socket's peer is the client.
        proxy_headers=bool(config.node.trusted_proxies),
        forwarded_allow_ips=list(config.node.trusted_proxies) or None,
        ws_max_size=16 * 1024,
        ws_per_message_deflate=config.node.ws_compression,
    )
    lock.release()
    return 0


def _open_for_command(config: Config, command: str) -> sqlite_utils.Database | None:
    """The database for a command run next to the node (create-user, approve-user): it
    migrates only when no node runs on the data dir, so that a `git pull` followed by a
    command never changes the schema under a node still running the old code."""
    from node.store.database import open_database
    from node.store.errors import DataDirInUse, StoreError
    from node.store.migrate import status
    from node.store.schema import MIGRATIONS

    try:
        try:
            with DataDirLock(config.data_path, f"python -m node {command}"):
                return open_database(config.data_path)
        except DataDirInUse:
            db = open_database(config.data_path, upgrade=False)
            found = status(db)
            if found.pending or found.unknown:
                db.close()
                print(
                    f"error: the running node's database is at schema version "
                    f"{found.version}, this code's is {len(MIGRATIONS)}: "
                    f"restart the node with this code first",
                    file=sys.stderr,
                )
                return None
            return db
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _create_user(config: Config, username: str, admin: bool) -> int:
    from node.errors import ParleyError
    from node.store.accounts import AccountDirectory

    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {username}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    db = _open_for_command(config, "create-user")
    if db is None:
        return 1
    try:
        account = AccountDirectory(db).create(username, password, is_admin=admin)
    except ParleyError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        db.close()
    kind = "admin" if account.is_admin else "user"
    print(f"created {kind} {account.username}")
    return 0


def _approve_user(config: Config, username: str) -> int:
    from node.errors import ParleyError
    from node.store.accounts import AccountDirectory

    db = _open_for_command(config, "approve-user")
    if db is None:
        return 1
    try:
        account = AccountDirectory(db).approve(username)
    except ParleyError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"approved {account.username}")
    return 0


def _migrate(config: Config, show_only: bool) -> int:
    from node.store.database import close_database, open_database
    from node.store.errors import StoreError
    from node.store.lock import DataDirLock
    from node.store.migrate import migrate, status
    from node.store.schema import MIGRATIONS

    try:
        # Changing the schema under a running node's feet is refused; looking is not.
        lock = DataDirLock(config.data_path, "python -m node migrate")
        with contextlib.nullcontext() if show_only else lock:
            db = open_database(config.data_path, check=True, upgrade=False)
            try:
                before = status(db)
                print(f"schema version {before.version}; this code: {len(MIGRATIONS)}")
                if not show_only:
                    for key in migrate(db):
                        print(f"applied {key}")
                    print(f"schema version {status(db).version}: up to date")
                elif before.pending:
                    print("pending: " + ", ".join(before.pending))
            finally:
                close_database(db)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _backup(config: Config, path: str, with_files: bool) -> int:
    from node.store.backup import backup
    from node.store.errors import StoreError

    try:
        summary = backup(config.data_path, path, with_files=with_files)
    except (StoreError, OSError) as exc:
        print(f"error: backup failed, nothing was written to {path}: {exc}", file=sys.stderr)
        return 1
    print(f"backup {summary.describe()}")
    return 0


def _restore(config: Config, path: str) -> int:
    from node.store.backup import restore
    from node.store.errors import StoreError

    try:
        summary = restore(config.data_path, path)
    except (StoreError, OSError) as exc:
        print(f"error: nothing was restored: {exc}", file=sys.stderr)
        return 1
    print(summary.describe())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node", description="Run a Parley node.")
    parser.add_argument("--config", default="node.toml", help="path to node.toml")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the node (the default)")
    create = commands.add_parser("create-user", help="create an account")
    create.add_argument("username")
    create.add_argument("--admin", action="store_true", help="make it an administrator")
    create.add_argument("--config", dest="sub_config", default=None)
    approve = commands.add_parser("approve-user", help="approve a pending sign-up")
    approve.add_argument("username")
    approve.add_argument("--config", dest="sub_config", default=None)
    migrate = commands.add_parser(
        "migrate", help="bring the database to this code's schema (the node stopped)"
    )
    migrate.add_argument("--status", action="store_true", help="only show the versions")
    migrate.add_argument("--config", dest="sub_config", default=None)
    backup = commands.add_parser("backup", help="copy the data to a new directory (live)")
    backup.add_argument("path", help="a new directory, e.g. backups/parley-2025-01-31")
    backup.add_argument(
        "--with-files", action="store_true", help="recordings, avatars... too (not just the db)"
    )
    backup.add_argument("--config", dest="sub_config", default=None)
    restore = commands.add_parser("restore", help="put a backup back (the node stopped)")
    restore.add_argument("path", help="a directory made by `backup`")
    restore.add_argument("--config", dest="sub_config", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(getattr(args, "sub_config", None) or args.config)
    except ConfigError as exc:
        print(f"node.toml error: {exc}", file=sys.stderr)
        return 2
    if args.command == "create-user":
        return _create_user(config, args.username, args.admin)
    if args.command == "approve-user":
        return _approve_user(config, args.username)
    if args.command == "migrate":
        return _migrate(config, args.status)
    if args.command == "backup":
        return _backup(config, args.path, args.with_files)
    if args.command == "restore":
        return _restore(config, args.path)
    return _serve(config)


if __name__ == "__main__":
    sys.exit(main())
