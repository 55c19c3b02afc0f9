"""The deployment files say what the app understands: docker-compose.yml's commands are `kehu`
commands, its KEHU_ variables are settings, and its services are the documented stack (no
Docker engine runs in CI, so this is what can be checked without one)."""

from __future__ import annotations

import re

import typer.main
import yaml

from app.cli import cli
from app.config import PROJECT_ROOT, Settings


def compose() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def test_compose_runs_postgresql_a_migration_web_workers_and_one_scheduler():
    services = compose()["services"]
    assert set(services) == {"db", "migrate", "web", "scheduler"}
    assert services["migrate"]["command"] == ["kehu", "migrate"]
    assert services["scheduler"]["command"] == ["kehu", "scheduler"]
    web = services["web"]
    assert web["command"][:2] == ["kehu", "serve"] and "--workers" in web["command"]
    assert web["environment"]["KEHU_SCHEDULER_ENABLED"] == "false"
    for name in ("web", "scheduler"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
        url = services[name]["environment"]["KEHU_DATABASE_URL"]
        assert url.startswith("postgresql+asyncpg://") and "@db:5432/" in url


def test_compose_uses_only_real_commands_and_settings():
    commands = set(typer.main.get_command(cli).commands)  # type: ignore[attr-defined]
    fields = {name.upper() for name in Settings.model_fields}
    for name, service in compose()["services"].items():
        command = service.get("command")
        if command:
            assert command[0] == "kehu" and command[1] in commands, name
        for variable in service.get("environment") or {}:
            if variable.startswith("KEHU_") and variable != "KEHU_WORKERS":
                assert variable.removeprefix("KEHU_") in fields, (name, variable)


def test_the_dockerfile_installs_the_locked_dependencies_and_checks_readiness():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "requirements.lock" in dockerfile
    assert re.search(r"HEALTHCHECK .*?/readyz", dockerfile)
