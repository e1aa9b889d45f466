"""Database engines and schema migrations for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# The newest migration in migrations/versions (a test keeps the two in step). Knowing it lets a start on an
# up-to-date database skip importing Alembic, which would cost the gateway ~10 MB of memory for nothing.
HEAD_REVISION = "0007"
MIGRATION_LOCK_ID = 0x6C6C6D72  # "llmr": the PostgreSQL advisory lock taken while migrating
# The URL schemes make_engine can serve: SQLite (built in) and PostgreSQL through psycopg 3, the one driver the
# package depends on. Any other scheme would fail deep inside SQLAlchemy's dialect loading.
_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgres", "postgresql", "postgresql+psycopg")


class StorageError(Exception):
    """The database (or the directory it lives in) cannot be used; the message says so in one line, names the
    database without its password, and says what to do. The CLI and `serve` print it and exit with status 2."""


def shown_url(url: str) -> str:
    """The URL as the operator wrote it, with any password replaced by ***, for messages and logs.

    Done on the text rather than through a URL parser: a password holding `/`, `@` or `#` unencoded confuses
    parsers, and a message must never leak it. Everything before the last `@` of the authority-and-path part is
    taken as the user information, which masks too much in the odd case rather than too little."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.startswith("sqlite"):
        return url
    head, query_mark, query = rest.partition("?")
    userinfo, at, location = head.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{location}{query_mark}{query}"


def default_database_url(data_dir: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'llmrelay.db'}"


def normalize_url(url: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL and use the psycopg 3 driver for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _tune_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the CLI write while the gateway reads; busy_timeout makes concurrent writers wait, not fail.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for the URL; SQLite files get their directory created and are tuned for concurrency.

    Raises StorageError for a URL llmrelay cannot serve and for a SQLite directory that cannot be created."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise StorageError(f"unsupported database URL {shown_url(url)}: use sqlite:///path or postgresql://...")
    if _ambiguous_userinfo(url):
        raise StorageError(
            f"invalid database URL {shown_url(url)}: write @, /, ? and # in the user name or password "
            "percent-encoded (%40, %2F, %3F, %23)"
        )
    given, url = url, normalize_url(url)
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                _make_directory(Path(path).parent, given)
            engine = create_engine(url, connect_args={"check_same_thread": False})
            event.listen(engine, "connect", _tune_sqlite)
            return engine
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    except (ArgumentError, ValueError) as exc:  # e.g. a port that is not a number
        raise StorageError(f"invalid database URL {shown_url(given)}: {_first_line(exc)}") from None


def _ambiguous_userinfo(url: str) -> bool:
    """True when the user name or password holds a character that ends the URL's authority early: the driver
    would then take part of the password for the host name and could repeat it in its error message."""
    if url.startswith("sqlite"):
        return False
    userinfo = url.partition("://")[2].partition("?")[0].rpartition("@")[0]
    return any(c in userinfo for c in "@/?#")


def _make_directory(directory: Path, url: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the directory {directory} for the database {shown_url(url)}: {_reason(exc)}"
        ) from None


def _reason(exc: OSError) -> str:
    """An OS error as the end of a sentence: `permission denied`, without the errno and path Python adds."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def explain_database_error(exc: BaseException, url: str) -> StorageError:
    """One line for a database failure, in place of the driver's multi-line text and SQLAlchemy's traceback.

    The drivers' messages are matched as text because psycopg reports connection failures without an SQLSTATE;
    whatever is not recognised keeps the driver's own first line, which still beats a traceback."""
    if isinstance(exc, StorageError):
        return exc
    shown = shown_url(url)
    detail = str(getattr(exc, "orig", None) or exc)
    if not url.startswith("sqlite"):
        server = _server_of(shown)
        missing = re.search(r'database "([^"]*)" does not exist', detail)
        if missing:
            return StorageError(
                f'database "{missing.group(1)}" does not exist on {server} '
                f"(create it: {_createdb_command(shown, missing.group(1))})"
            )
        role = re.search(r'role "([^"]*)" does not exist', detail)
        if role:
            return StorageError(f'cannot connect to the database {shown}: user "{role.group(1)}" does not exist')
        for pattern, reason in _CONNECTION_FAILURES:
            found = re.search(pattern, detail, re.IGNORECASE)
            if found:
                return StorageError(f"cannot connect to the database {shown}: {reason.format(*found.groups())}")
    elif isinstance(exc, DBAPIError):
        return StorageError(f"cannot use the SQLite database {shown}: {_first_line(exc.orig)}")
    first = _first_line(Exception(detail))
    if first.startswith("connection failed") or "connection to server" in first:
        # libpq's "connection failed: connection to server at ..., port ... failed: REASON": the reason is news.
        reason = re.sub(r"^.*failed: (FATAL:\s*)?", "", first)
        return StorageError(f"cannot connect to the database {shown}: {reason}")
    return StorageError(f"cannot use the database {shown}: {first}")


# Connection failures of PostgreSQL (libpq's wording) and what to say instead.
_CONNECTION_FAILURES = (
    (r"Connection refused", "connection refused (is PostgreSQL running?)"),
    (r"failed to resolve host '([^']*)'", "unknown host {0}"),
    (r'could not translate host name "([^"]*)"', "unknown host {0}"),
    (r'password authentication failed for user "([^"]*)"', 'wrong password for user "{0}"'),
    (r"no password supplied", "the server asks for a password and the URL has none"),
    (r"timeout expired|timed out", "timed out (is the host reachable?)"),
    (r"No route to host", "no route to host"),
    (r"Network is unreachable", "network is unreachable"),
)


def _createdb_command(shown: str, database: str) -> str:
    """The createdb line that makes the missing database, with the URL's host, port and user."""
    try:
        parsed = make_url(shown)
    except ArgumentError:
        return f"createdb {database}"
    options = [("-h", parsed.host), ("-p", parsed.port), ("-U", parsed.username)]
    return " ".join(["createdb", *(f"{flag} {value}" for flag, value in options if value), database])


def _server_of(shown: str) -> str:
    """`postgresql://user@host:5432` from a (password-masked) URL: the server a missing database was sought on."""
    scheme, _, rest = shown.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def schema_revision(engine: Engine) -> str | None:
    """The schema version recorded in the database, or None for a database Alembic has not touched."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


def open_database(url: str) -> Engine:
    """make_engine and migrate, for a command about to use the database: every failure is a StorageError that
    names the URL as the operator wrote it."""
    engine = make_engine(url)
    migrate(engine, url)
    return engine


def migrate(engine: Engine, url: str | None = None) -> None:
    """Bring the schema to the newest version (idempotent; safe on every start).

    Raises StorageError, one line, when the database cannot be reached or migrated; `url` is how the message
    names the database (default: the engine's URL without the driver normalize_url added)."""
    url = url or engine.url.set(drivername=engine.url.get_backend_name()).render_as_string(hide_password=False)
    try:
        _migrate(engine)
    except SQLAlchemyError as exc:
        raise explain_database_error(exc, url) from None
    except Exception as exc:
        # Alembic's CommandError: chiefly a database migrated by a newer llmrelay than this one.
        if type(exc).__module__.startswith("alembic"):
            raise StorageError(
                f"cannot migrate the database {shown_url(url)}: {_first_line(exc)} "
                f"(this llmrelay knows schema revisions up to {HEAD_REVISION}; is the database from a newer one?)"
            ) from None
        raise


def _migrate(engine: Engine) -> None:
    if schema_revision(engine) == HEAD_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Nodes starting together must not both create the tables: one migrates, the others wait and then
            # find the schema current (Alembic reads the version after the lock is held).
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
