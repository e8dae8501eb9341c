"""zeus.json validation: every error is one line naming the file and the node; valid trees."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from zeuspy import config
from zeuspy.config import CommandSpec, PhaseSpec
from zeuspy.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zeus.json"
    path.write_text(text, encoding="utf-8")
    return path


def plan(tree: object, command: object = "true", **extra: object) -> str:
    data: dict[str, object] = {"plan": tree, **extra}
    if command is not None:
        data["command"] = command
    return json.dumps(data)


def error_of(tmp_path: Path, text: str, names: Path | None = None) -> str:
    """The message of the ConfigError that loading ``text`` raises; checks it is one line naming
    ``names`` (default: zeus.json itself)."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    message = info.value.message
    assert "\n" not in message, f"not one line: {message!r}"
    assert message == str(info.value)
    assert str(names or path) in message, f"does not name the file: {message!r}"
    assert info.value.exit_code == 2
    return message


# -- errors ---------------------------------------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file") as info:
        config.load(tmp_path / "zeus.json")
    assert str(tmp_path / "zeus.json") in info.value.message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "zeus.json"
    path.write_bytes(b'{"plan": "\xff"}')
    with pytest.raises(ConfigError, match="cannot read it"):
        config.load(path)


def test_invalid_json_has_line_and_column(tmp_path: Path) -> None:
    message = error_of(tmp_path, '{\n  "plan": {\n    "boot": {,}\n  }\n}\n')
    assert f"{tmp_path / 'zeus.json'}:3:14: invalid JSON" in message


def test_empty_file_is_invalid_json(tmp_path: Path) -> None:
    assert ":1:1: invalid JSON" in error_of(tmp_path, "")


@pytest.mark.parametrize("text", [
    '{"plan": {"boot": {}}, "plan": {"boot": {}}}',
    '{"command": "true", "plan": {"boot": {"app": null, "app": ["a"]}}}',
    '{"command": "true", "plan": {"boot": {"x": {"a": null, "a": null}}}}',
])
def test_duplicate_keys(tmp_path: Path, text: str) -> None:
    message = error_of(tmp_path, text)
    assert "appears twice" in message
    assert "'plan'" in message or "'app'" in message or "'a'" in message


@pytest.mark.parametrize(("text", "kind"), [
    ("[]", "list"), ('"x"', "a string"), ("3", "a number"), ("true", "a boolean"), ("null", "None"),
])
def test_top_level_not_an_object(tmp_path: Path, text: str, kind: str) -> None:
    message = error_of(tmp_path, text)
    assert f"the top level must be an object, not {kind}" in message


@pytest.mark.parametrize("tree", [None, [], "boot", 1])
def test_plan_not_an_object(tmp_path: Path, tree: object) -> None:
    assert '"plan" must be an object' in error_of(tmp_path, plan(tree))


def test_plan_missing(tmp_path: Path) -> None:
    assert '"plan" must be an object' in error_of(tmp_path, '{"command": "true"}')


@pytest.mark.parametrize(("tree", "named"), [
    ({"main": {}}, "'main'"),
    ({}, "nothing"),
    ({"boot": {}, "other": {}}, "'boot', 'other'"),
    ({"boot": None}, "'boot'"),
    ({"boot": []}, "'boot'"),
    ({"boot": "x"}, "'boot'"),
])
def test_root_must_be_boot(tmp_path: Path, tree: object, named: str) -> None:
    message = error_of(tmp_path, plan(tree))
    assert 'one phase named "boot"' in message
    assert message.endswith(f"found {named}")


@pytest.mark.parametrize(("value", "kind"), [
    ("x", "a string"), (3, "a number"), (1.5, "a number"), (True, "a boolean"),
    (False, "a boolean"),
])
def test_bad_node_types(tmp_path: Path, value: object, kind: str) -> None:
    message = error_of(tmp_path, plan({"boot": {"app": {"weird": value}}}))
    assert f'node "weird" in phase "app" is {kind}' in message
    assert "a phase is an object and a command is a list of aliases or null" in message


@pytest.mark.parametrize("aliases", [[1], ["ok", None], [["nested"]], [{}]])
def test_aliases_must_be_strings(tmp_path: Path, aliases: list[object]) -> None:
    message = error_of(tmp_path, plan({"boot": {"test": aliases}}))
    assert 'command "test" in phase "boot": aliases must be a list of strings' in message


@pytest.mark.parametrize(("tree", "what", "name"), [
    ({"boot": {"db:migrate": None}}, "command", "db:migrate"),
    ({"boot": {"two words": None}}, "command", "two words"),
    ({"boot": {"a;b": {}}}, "phase", "a;b"),
    ({"boot": {"": None}}, "command", ""),
    ({"boot": {"tab\there": None}}, "command", "tab\there"),
    ({"boot": {"new\nline": {}}}, "phase", "new\nline"),
    ({"boot": {"nul\0": None}}, "command", "nul\0"),
    ({"boot": {"test": ["t:1"]}}, 'alias of "test"', "t:1"),
    ({"boot": {"test": [" t"]}}, 'alias of "test"', " t"),
    ({"boot": {"test": [""]}}, 'alias of "test"', ""),
])
def test_forbidden_characters_in_names(tmp_path: Path, tree: object, what: str, name: str) -> None:
    message = error_of(tmp_path, plan(tree))
    assert f"{what} {name!r} in " in message
    assert "names must be non-empty and contain no spaces, ':' or ';'" in message


@pytest.mark.parametrize(("tree", "name", "used_as"), [
    ({"boot": {"a": {"x": None}, "b": {"x": None}}}, "command 'x' in phase \"b\"",
     'command in phase "a"'),
    ({"boot": {"a": {"x": {}}, "b": {"x": None}}}, "command 'x' in phase \"b\"",
     'phase in phase "a"'),
    ({"boot": {"a": {"boot": None}}}, "command 'boot' in phase \"a\"", "phase in plan"),
    ({"boot": {"a": {}, "b": {"a": {}}}}, "phase 'a' in phase \"b\"", 'phase in phase "boot"'),
])
def test_duplicate_names_across_branches(tmp_path: Path, tree: object, name: str,
                                         used_as: str) -> None:
    message = error_of(tmp_path, plan(tree))
    assert f"{name} is already used as {used_as}" in message


@pytest.mark.parametrize(("tree", "fragment"), [
    ({"boot": {"test": ["t"], "tests": ["t"]}},
     "alias of \"tests\" 't' in phase \"boot\" is already used as alias of \"test\""),
    ({"boot": {"test": ["test"]}}, "alias of \"test\" 'test' in phase \"boot\" is already used as "
     'command in phase "boot"'),
    ({"boot": {"test": ["app"], "app": {}}}, "phase 'app' in phase \"boot\" is already used as "
     'alias of "test" in phase "boot"'),
    ({"boot": {"app": {}, "test": ["app"]}}, "alias of \"test\" 'app'"),
    ({"boot": {"x": {"test": ["t"]}, "y": {"t": None}}}, "command 't' in phase \"y\""),
])
def test_aliases_clash(tmp_path: Path, tree: object, fragment: str) -> None:
    message = error_of(tmp_path, plan(tree))
    assert fragment in message
    assert "already used as" in message


@pytest.mark.parametrize(("command", "expected"), [
    ("ruby shim.rb", ("ruby", "shim.rb")),
    ("  spaced   out  ", ("spaced", "out")),
    ("bundle exec ruby -e 'puts \"hi there\"'",
     ("bundle", "exec", "ruby", "-e", 'puts "hi there"')),
    ('python "my shim.py" --flag=\'a b\'', ("python", "my shim.py", "--flag=a b")),
    ("a\\ b c", ("a b", "c")),
    (["python", "my shim.py", ""], ("python", "my shim.py", "")),
    (["one"], ("one",)),
])
def test_command_forms(tmp_path: Path, command: object, expected: tuple[str, ...]) -> None:
    loaded = config.load(write(tmp_path, plan({"boot": {}}, command=command)))
    assert loaded.command == expected
    assert not loaded.uses_python_shim
    assert loaded.plan_file is None


@pytest.mark.parametrize("command", ["ruby 'unclosed", 'ruby "unclosed', "trailing\\"])
def test_command_unparseable(tmp_path: Path, command: str) -> None:
    message = error_of(tmp_path, plan({"boot": {}}, command=command))
    assert '"command" cannot be parsed as a shell line' in message


@pytest.mark.parametrize("command", ["", "   ", [], " \t "])
def test_command_empty(tmp_path: Path, command: object) -> None:
    assert error_of(tmp_path, plan({"boot": {}}, command=command)).endswith('"command" is empty')


@pytest.mark.parametrize("command", [3, True, {"a": "b"}, ["ok", 1], [None]])
def test_command_wrong_type(tmp_path: Path, command: object) -> None:
    message = error_of(tmp_path, plan({"boot": {}}, command=command))
    assert '"command" must be a string or a list of strings' in message


def test_plan_file_missing(tmp_path: Path) -> None:
    message = error_of(tmp_path, plan({"boot": {}}, command=None), tmp_path / "zeus_plan.py")
    assert "plan file not found" in message


def test_named_plan_file_missing(tmp_path: Path) -> None:
    message = error_of(tmp_path, plan({"boot": {}}, command=None, plan_file="plans/mine.py"),
                       tmp_path / "plans" / "mine.py")
    assert "plan file not found" in message
    assert "zeus.json" in message


@pytest.mark.parametrize("plan_file", ["", 3, None, ["x.py"]])
def test_plan_file_not_a_name(tmp_path: Path, plan_file: object) -> None:
    message = error_of(tmp_path, plan({"boot": {}}, command=None, plan_file=plan_file))
    assert '"plan_file" must be a file name' in message


def test_bad_node_type_with_newline_in_name_is_one_line(tmp_path: Path) -> None:
    error_of(tmp_path, plan({"boot": {"bad\nname": 3}}))


# -- valid trees ----------------------------------------------------------------------------------
TREE = {
    "boot": {
        "default": {
            "dev": {"server": ["s", "serve"], "console": None},
            "test_env": {"test": ["t"], "cucumber": []},
        },
        "top": None,
        "tools": {},
    }
}


def test_valid_tree_in_pre_order(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, plan(TREE)))
    assert list(loaded.phases) == ["boot", "default", "dev", "test_env", "tools"]
    assert loaded.phases == {
        "boot": PhaseSpec("boot", None, ("default", "tools"), ("top",)),
        "default": PhaseSpec("default", "boot", ("dev", "test_env"), ()),
        "dev": PhaseSpec("dev", "default", (), ("server", "console")),
        "test_env": PhaseSpec("test_env", "default", (), ("test", "cucumber")),
        "tools": PhaseSpec("tools", "boot", (), ()),
    }
    assert list(loaded.commands) == ["server", "console", "test", "cucumber", "top"]
    assert loaded.command_names() == ["server", "console", "test", "cucumber", "top"]
    assert loaded.commands["server"] == CommandSpec("server", "dev", ("s", "serve"))
    assert loaded.commands["console"] == CommandSpec("console", "dev", ())
    assert loaded.commands["cucumber"] == CommandSpec("cucumber", "test_env", ())
    assert loaded.commands["top"] == CommandSpec("top", "boot", ())
    assert loaded.aliases == {"s": "server", "serve": "server", "t": "test"}
    assert loaded.path == tmp_path / "zeus.json"
    assert loaded.root == tmp_path
    assert loaded.warnings == ()


def test_aliases_resolve(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, plan(TREE)))
    assert loaded.resolve("s") == loaded.commands["server"]
    assert loaded.resolve("serve") == loaded.commands["server"]
    assert loaded.resolve("server") == loaded.commands["server"]
    assert loaded.resolve("t") == loaded.commands["test"]
    assert loaded.resolve("nope") is None
    assert loaded.resolve("dev") is None  # a phase is not a command


def test_unknown_keys_are_warnings(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, plan({"boot": {}}, colour="blue", autostart=True)))
    assert loaded.warnings == (f"{tmp_path / 'zeus.json'}: unknown key 'colour' ignored",)


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, plan({"boot": {}}))
    monkeypatch.chdir(tmp_path)
    loaded = config.load(Path("zeus.json"))
    assert loaded.path.is_absolute()
    assert loaded.root == tmp_path


def test_python_shim_by_default(tmp_path: Path) -> None:
    (tmp_path / "zeus_plan.py").write_text(
        "import zeuspy\nclass P(zeuspy.Plan):\n    def boot(self): pass\n")
    loaded = config.load(write(tmp_path, plan({"boot": {}}, command=None)))
    assert loaded.uses_python_shim
    assert loaded.plan_file == tmp_path / "zeus_plan.py"
    assert loaded.command == (sys.executable, "-m", "zeuspy.slave", str(tmp_path / "zeus_plan.py"))


def test_discover_walks_up_to_zeus_json(tmp_path: Path) -> None:
    write(tmp_path, plan({"boot": {}}))
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert config.discover(deep).path == tmp_path / "zeus.json"
    assert config.discover(tmp_path).path == tmp_path / "zeus.json"
    assert config.discover(deep).builtin is None


def test_builtin_words_are_the_cli_and_registry_words() -> None:
    """One list of built-ins: what the CLI intercepts, what the registry runs, what plans may
    not use as command names."""
    from zeuspy import builtins, cli
    from zeuspy.config import RESERVED_NAMES

    assert set(cli.BUILTINS) == set(builtins.BUILTINS)
    assert {*cli.BUILTINS, "version", "help"} == RESERVED_NAMES
