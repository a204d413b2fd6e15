"""Every setting is documented, and the public API is what `__all__` says."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import propylon
from propylon.config import (
    BreakerSettings,
    EmbeddedSettings,
    ModelSettings,
    RetrySettings,
    Settings,
    TargetSettings,
)

NESTED = {
    "embedded": EmbeddedSettings,
    "models": ModelSettings,
    "targets": TargetSettings,
    "retry": RetrySettings,
    "breaker": BreakerSettings,
}

DOCS = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [f"`{name}`" for name in Settings.model_fields if f"`{name}`" not in DOCS]
    missing += [
        f"`embedded.{name}`"
        for name in EmbeddedSettings.model_fields
        if f"`embedded.{name}`" not in DOCS
    ]
    assert missing == []


def test_every_setting_has_a_description() -> None:
    for model in (Settings, *NESTED.values()):
        assert all(field.description for field in model.model_fields.values())


def test_public_api() -> None:
    assert sorted(propylon.__all__) == ["Settings", "__version__", "create_app"]
    for name in propylon.__all__:
        assert getattr(propylon, name)


def test_an_app_in_someone_elses_process_leaves_its_collector_alone(tmp_path: Path) -> None:
    """`create_app` is public: its app may be served inside another program, whose heap its
    lifespan must not freeze (only `propylon serve`, a process of its own, does)."""
    settings = Settings(data_dir=tmp_path, models=[ModelSettings(name="echo", provider="echo")])
    app = propylon.create_app(settings)

    async def serve() -> int:
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count()

    before = gc.get_freeze_count()
    try:
        assert asyncio.run(serve()) == before
    finally:
        gc.unfreeze()  # (on failure: the rest of this process collected as usual)


def test_cli_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "propylon",
            "serve",
            "--host",
            "0.0.0.0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert not (tmp_path / "propylon.db").exists()
