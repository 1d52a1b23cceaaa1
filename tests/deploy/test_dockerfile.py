"""The Dockerfile, parsed: stages, user, health check, torch variant, entry point."""

from __future__ import annotations

import fnmatch
import re

from tests.deploy.image import (
    DOCKERIGNORE,
    ROOT,
    copied_into_image,
    copy_args,
    entrypoint_argv,
    exec_form,
    final_stage,
    healthcheck_argv,
    instructions,
)


def test_multi_stage_with_only_the_virtual_environment_carried_over() -> None:
    stages = [i.value for i in instructions() if i.name == "FROM"]
    assert len(stages) >= 2
    builder = re.search(r"\bAS (\S+)$", stages[0], re.I)
    assert builder, stages[0]
    from_builder = [
        copy_args(i.value)
        for i in final_stage()
        if i.name == "COPY" and copy_args(i.value)[0].get("from") == builder[1]
    ]
    assert [(sources, target) for _, sources, target in from_builder] == [
        (["/opt/venv"], "/opt/venv")
    ]
    # The runtime stage installs nothing: no compilers or pip caches in the image.
    assert not any("pip install" in i.value for i in final_stage())


def test_final_user_is_not_root() -> None:
    users = [i.value.split(":")[0] for i in final_stage() if i.name == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_health_check_runs_the_role_aware_script() -> None:
    argv = healthcheck_argv()
    assert copied_into_image()[argv[-1]] == ROOT / "docker" / "healthcheck.py"
    assert argv[0].endswith("/python")


def test_torch_variant_is_a_build_argument_choosing_pytorchs_index() -> None:
    builder = [i for i in instructions() if i.stage == 0]
    args = dict(a.value.partition("=")[::2] for a in builder if a.name == "ARG")
    assert args["TORCH_VARIANT"] == "cpu"
    (torch_install,) = [i.value for i in builder if i.name == "RUN" and "torch==" in i.value]
    assert "https://download.pytorch.org/whl/${TORCH_VARIANT}" in torch_install
    # The version comes from constraints.txt, so the image and `dev.py` never disagree.
    assert "constraints.txt" in torch_install
    assert not re.search(r"torch==\d", "\n".join(i.value for i in instructions()))
    (project_install,) = [
        i.value for i in builder if i.name == "RUN" and "pip install -c" in i.value
    ]
    assert "-c constraints.txt ." in project_install


def test_entrypoint_is_the_role_script_and_defaults_to_the_api() -> None:
    (script,) = entrypoint_argv()
    assert copied_into_image()[script] == ROOT / "docker" / "entrypoint.sh"
    (cmd,) = [i.value for i in final_stage() if i.name == "CMD"]
    assert exec_form(cmd) == ["api"]


def ignored(relative: str, patterns: list[str]) -> bool:
    # .dockerignore's rules, enough for this file: the last matching pattern wins and
    # "!" re-includes; a pattern also matches everything under a matching folder.
    verdict = False
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").removeprefix("**/")
        if any(
            fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p.split("/")[-1], pattern)
            for p in prefixes
        ):
            verdict = not negate
    return verdict


def test_everything_the_build_copies_exists_and_is_in_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignored(".venv", patterns) and ignored(".env", patterns)
    assert ignored("tests/deploy/test_compose.py", patterns)
    copies = [i for i in instructions() if i.name == "COPY"]
    for step in copies:
        flags, sources, _ = copy_args(step.value)
        if "from" in flags:
            continue
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"
