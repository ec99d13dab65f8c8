"""The README's promises: its first block is the two commands, CI runs the
second, the documents it links exist, and the commands it names exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def first_code_block(text: str) -> list[str]:
    match = re.search(r"```[a-z]*\n(.*?)```", text, re.S)
    assert match, "README has no code block"
    return [line for line in match.group(1).splitlines() if line.strip()]


def test_first_block_is_exactly_the_two_commands() -> None:
    assert README.lstrip().startswith("# tcpstack\n")
    before_block = README.split("```", 1)[0]
    assert before_block.strip() == "# tcpstack", "the commands must be the first block"
    assert first_code_block(README) == [
        "sudo tools/install && sudo tcpstack demo",
        "sudo tools/test",
    ]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^exec tools/test\s*$", ci, re.M), ci


def test_linked_files_exist() -> None:
    links = re.findall(r"\]\(([^)#]+)\)", README)
    assert links, "README links no documents"
    for link in links:
        if "://" not in link:
            assert (ROOT / link).exists(), f"README links {link}, which does not exist"


def test_named_tools_exist_and_are_executable() -> None:
    for name in set(re.findall(r"`tools/([a-z-]+)", README)):
        path = ROOT / "tools" / name
        assert path.is_file(), f"README names tools/{name}"
        assert path.stat().st_mode & 0o111, f"tools/{name} is not executable"


def test_every_scenario_is_in_the_readme() -> None:
    from tcpstack.scenarios import SCENARIOS

    for name in SCENARIOS:
        if name != "demo":
            assert f"`{name}`" in README, f"scenario {name} missing from the README"
