"""Run the Alembic migrations programmatically (``promptstudio migrate``, ``serve``, tests)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def _script_location() -> str:
    # In a checkout the migrations live in ./alembic; an installed package carries them as app.migrations.
    try:
        import app.migrations as packaged  # type: ignore[import-not-found]

        # a namespace package (alembic/ has no __init__.py): its directory is on __path__
        for entry in packaged.__path__:
            if (Path(entry) / "env.py").exists():
                return str(entry)
    except ImportError:  # pragma: no cover - checkout without an install
        pass
    return str(Path(__file__).resolve().parents[2] / "alembic")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def current_head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("postgresql://unused/")).get_current_head() or ""
