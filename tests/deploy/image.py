"""What the deployment files say, read the way Docker and Compose read them.

There is no Docker engine on the machines that run these tests, so the image is never
built: the tests read the Dockerfile and the compose file, and run the image's entry
commands here, with the paths the Dockerfile copies files to mapped back to this checkout.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
ENTRYPOINT_SCRIPT = ROOT / "docker" / "entrypoint.sh"
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Instruction:
    name: str
    value: str
    stage: int  # 0 for the first FROM's stage


@cache
def instructions() -> tuple[Instruction, ...]:
    parser = DockerfileParser(path=str(DOCKERFILE), cache_content=True)
    out, stage = [], -1
    for item in parser.structure:
        name = item["instruction"]
        if name == "COMMENT":
            continue
        if name == "FROM":
            stage += 1
        out.append(Instruction(name, item["value"], stage))
    return tuple(out)


def final_stage() -> list[Instruction]:
    last = max(i.stage for i in instructions())
    return [i for i in instructions() if i.stage == last]


def exec_form(value: str) -> list[str]:
    """An instruction's JSON (exec) form; shell form would put `sh -c` in between."""
    argv = json.loads(value)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), value
    return argv


def copy_args(value: str) -> tuple[dict[str, str], list[str], str]:
    words = shlex.split(value)
    flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


def copied_into_image() -> dict[str, Path]:
    """Image path -> file of this checkout, for the final stage's COPYs from the context."""
    mapping = {}
    for step in final_stage():
        if step.name != "COPY":
            continue
        flags, sources, target = copy_args(step.value)
        if "from" not in flags and len(sources) == 1:
            mapping[target] = ROOT / sources[0]
    return mapping


def healthcheck_argv() -> list[str]:
    (step,) = [i for i in final_stage() if i.name == "HEALTHCHECK"]
    _, _, command = step.value.partition("CMD ")
    return exec_form(command.strip())


def entrypoint_argv() -> list[str]:
    (step,) = [i for i in final_stage() if i.name == "ENTRYPOINT"]
    return exec_form(step.value)


def image_env() -> dict[str, str]:
    """The final stage's ENV, minus PATH (the image's venv is this test's venv)."""
    parser = DockerfileParser(path=str(DOCKERFILE), cache_content=True)
    return {k: v for k, v in parser.envs.items() if k != "PATH"}


def local(argv: list[str]) -> list[str]:
    """An image command as it runs here: copied files from the checkout, the image's
    Python as this interpreter, and shell scripts through sh (git may drop exec bits)."""
    files = copied_into_image()
    out = []
    for arg in argv:
        if arg in files:
            path = files[arg]
            out += ["sh", str(path)] if path.suffix == ".sh" else [str(path)]
        elif Path(arg).name in ("python", "python3"):
            out.append(sys.executable)
        else:
            out.append(arg)
    return out


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


# Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
# ${VAR:?error}, ${VAR?error} (no nesting, which this file does not use).
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<plain>[A-Za-z_]\w*)"
    r"|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["plain"] or match["name"]
        op, arg, current = match["op"], match["arg"], env.get(name)
        missing = current is None or (current == "" and op and op.startswith(":"))
        if op and op.endswith("?") and missing:
            raise KeyError(f"{name}: {arg}")
        if op and op.endswith("-") and missing:
            return arg
        return current or ""

    return _VARIABLE.sub(substitute, value)


# What an operator's .env holds: the example, with its secrets filled in.
TEST_ENV = env_example() | {"POSTGRES_PASSWORD": "pg-secret", "RAY_AUTH_TOKEN": "ray-secret"}


def compose_raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file as `docker compose config` sees it with ``env`` as its .env."""
    return interpolate(compose_raw(), TEST_ENV if env is None else env)


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def environment(name: str) -> dict[str, str]:
    env = service(name).get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def entry_command(*args: str) -> list[str]:
    """What a container of the image runs for `docker run IMAGE ARGS...`, here."""
    return local(entrypoint_argv()) + list(args)


def subprocess_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The image's environment around this checkout: its venv's `alto` and `ray` first on
    PATH, state in tmp_path, and nothing of the caller's ALTO_* or RAY_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALTO_", "RAY_ADDRESS"))}
    env.update(image_env())
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        ALTO_DATA_DIR=str(tmp_path / "data"),
        ALTO_RUN_DIR=str(tmp_path / "run"),
        ALTO_DATABASE_URL=f"sqlite:///{tmp_path / 'alto.db'}",
        # Loopback: this is a shared machine, not a container's private network.
        ALTO_HOST="127.0.0.1",
    )
    env.update(overrides)
    return env
