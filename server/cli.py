"""The ``yunkan`` command: serve, migrate, demo, user add (and domain commands)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from recordings import cli_verify
from server import logs
from server.booking import cli_holidays
from server.settings import Settings, SettingsError
from server.supervision import card_cli
from signaling import cli_join

log = logging.getLogger("yunkan.cli")

# Domains add sub-commands here: each is ``add_parser(subparsers)`` and sets ``func``.
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], object]] = [
    cli_join.add_parser,
    cli_verify.add_parser,
    cli_holidays.add_parser,
    card_cli.add_parser,
]


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    overrides: dict[str, Any] = {"data_dir": getattr(args, "data_dir", None), **extra}
    return Settings.load(None, getattr(args, "config", None), **overrides)


async def _with_db(
    settings: Settings, work: Callable[..., object], *, sign: bool = False
) -> object:
    from recordings.checkpoints import SIGNER
    from server.db.engine import create_engine, session_factory
    from server.letters.web import load_seal

    engine = create_engine(settings)
    factory = session_factory(engine)
    # As in the app: state changes made by CLI work (demo seeding) are signed too.
    if sign:
        seal = await asyncio.to_thread(load_seal, settings)
        factory.configure(info={SIGNER: seal.checkpoint_signer()})
    try:
        return await work(factory)  # type: ignore[misc]
    finally:
        await engine.dispose()


def cmd_serve(args: argparse.Namespace) -> int:
    from server import workers
    from server.app import create_app
    from server.db.migrate import upgrade_sync
    from server.demo import logins_text, seed
    from server.logs import AccessLogger

    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        demo=True if args.demo else None,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        workers=args.workers,
    )
    logs.configure(settings.log_level, settings.log_format)
    index: int | None = args.worker_index
    if index is None:
        # One-time work, before any worker starts (with --workers the parent does it).
        log.info("starting", extra={"settings": settings.redacted()})
        upgrade_sync(settings.effective_database_url)
        if settings.demo:
            asyncio.run(_with_db(settings, lambda db: seed(db, settings), sign=True))  # type: ignore[arg-type]
            print(logins_text(settings), flush=True)
    from signaling.tls import TlsError, server_ssl_context

    try:
        ssl_context = server_ssl_context(
            settings.data_dir,
            cert=settings.tls_cert or None,
            key=settings.tls_key or None,
            dev=args.tls_dev,
        )
    except TlsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if index is None and settings.workers > 1:
        for i in range(settings.workers):
            workers.worker_settings(settings, i)  # a bad port or URL template stops us here
        return workers.Supervisor(
            settings.workers, workers.worker_argv(_serve_options(args), settings.workers)
        ).run()
    if index is not None:
        settings = workers.worker_settings(settings, index, secure=ssl_context is not None)
        web.run_app(
            create_app(settings),
            sock=workers.listening_sockets(settings, index),
            access_log_class=AccessLogger,
            ssl_context=ssl_context,
            print=None,
            handle_signals=True,
        )
        return 0
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log_class=AccessLogger,
        ssl_context=ssl_context,
        print=None,
        handle_signals=True,
    )
    return 0


def _serve_options(args: argparse.Namespace) -> list[str]:
    """The options a worker gets from the parent's command line (demo data is seeded)."""
    out: list[str] = []
    for flag, value in (
        ("--data-dir", args.data_dir),
        ("--config", args.config),
        ("--host", args.host),
        ("--port", args.port),
        ("--tls-cert", args.tls_cert),
        ("--tls-key", args.tls_key),
    ):
        if value is not None:
            out += [flag, str(value)]
    if args.demo:
        out.append("--demo")
    if args.tls_dev:
        out.append("--tls-dev")
    return out


def cmd_migrate(args: argparse.Namespace) -> int:
    from server.db.migrate import upgrade_sync

    settings = _settings(args)
    upgrade_sync(settings.effective_database_url)
    print("database is up to date")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from server.db.migrate import upgrade_sync
    from server.demo import logins_text, seed

    settings = _settings(args)
    upgrade_sync(settings.effective_database_url)
    asyncio.run(_with_db(settings, lambda db: seed(db, settings), sign=True))  # type: ignore[arg-type]
    print(logins_text(settings))
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    from server.accounts.service import add_user
    from server.db.migrate import upgrade_sync
    from server.errors import YunkanError

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
    settings = _settings(args)
    upgrade_sync(settings.effective_database_url)

    async def work(db: object) -> None:
        async with db.begin() as session:  # type: ignore[attr-defined]
            await add_user(
                session,
                username=args.name,
                password=password,
                role=args.role,
                display_name=args.display_name,
            )

    try:
        asyncio.run(_with_db(settings, work))
    except YunkanError as exc:
        detail = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
        print(f"error: {exc.message}{' (' + detail + ')' if detail else ''}", file=sys.stderr)
        return 1
    print(f"user {args.name} ({args.role}) created")
    return 0


def build_common() -> argparse.ArgumentParser:
    """The options every command that opens the database takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, default=None, help="data directory (default ./var)"
    )
    common.add_argument("--config", default=None, help="TOML settings file")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yunkan", description="Yunkan (云勘) video window service"
    )
    common = build_common()
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", parents=[common], help="run the web server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--demo", action="store_true", help="seed demo data and print the logins")
    serve.add_argument("--tls-cert", default=None, help="PEM certificate for HTTPS")
    serve.add_argument("--tls-key", default=None, help="PEM private key for HTTPS")
    serve.add_argument(
        "--tls-dev",
        action="store_true",
        help="serve HTTPS with a generated development certificate (to try it from a phone)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="relay/HTTP worker processes sharing the port (default 1; more need REDIS_URL)",
    )
    # Set by the parent of --workers for each worker it starts; not for people.
    serve.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", parents=[common], help="create or upgrade the database")
    migrate.set_defaults(func=cmd_migrate)

    demo = sub.add_parser("demo", parents=[common], help="seed demo data (idempotent)")
    demo.set_defaults(func=cmd_demo)

    user = sub.add_parser("user", help="manage staff accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", parents=[common], help="create a member of staff")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["inspector", "supervisor", "admin"])
    add.add_argument("--display-name", default=None)
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=cmd_user_add)

    for add_parser in EXTRA_COMMANDS:
        add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
