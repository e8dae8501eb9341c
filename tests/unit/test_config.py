"""zeus.json validation: every error is one line naming the file and the node; valid trees."""

from __future__ import annotations

import json
import os
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
    with pytest.raises(ConfigError, match=r"zeus.json:1:11: zeus.json is not UTF-8 \(byte 0xff\)"):
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
    ({"boot": {"db/migrate": None}}, "command", "db/migrate"),
    ({"boot": {"a/b": {}}}, "phase", "a/b"),
    ({"boot": {"esc\x1b[2J": None}}, "command", "esc\x1b[2J"),
    ({"boot": {"test": ["bell\x07"]}}, 'alias of "test"', "bell\x07"),
    ({"boot": {"nbsp\u00a0x": None}}, "command", "nbsp\u00a0x"),
])
def test_forbidden_characters_in_names(tmp_path: Path, tree: object, what: str, name: str) -> None:
    message = error_of(tmp_path, plan(tree))
    assert f"{what} {name!r} in " in message
    assert "names must be non-empty and contain no spaces, ':', ';', '/' or control characters" \
        in message


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
    assert loaded.command == (sys.executable, "-m", "zeuspy.shim", str(tmp_path / "zeus_plan.py"))


def test_discover_walks_up_to_zeus_json(tmp_path: Path) -> None:
    write(tmp_path, plan({"boot": {}}))
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert config.discover(deep).path == tmp_path / "zeus.json"
    assert config.discover(tmp_path).path == tmp_path / "zeus.json"
    assert config.discover(deep).builtin is None


def test_every_builtin_word_is_reserved_and_runs_a_module() -> None:
    """One registry of built-ins (cli.SUBCOMMANDS): what the CLI intercepts, the module each
    runs, and what plans may not use as command names all come from it."""
    import importlib

    from zeuspy import cli
    from zeuspy.config import RESERVED_NAMES

    assert frozenset(cli.RESERVED) == RESERVED_NAMES
    assert {"start", "init", "commands", "status", "restart", "stop", "version", "help"} \
        == RESERVED_NAMES
    for word, module, _, summary in cli.SUBCOMMANDS:
        assert callable(importlib.import_module(f"zeuspy.cli.{module}").main), word
        assert summary in cli.USAGE


# -- bad input: one line naming the file (and line:column where there is one), never a traceback
PLAN_SOURCE = "import zeuspy\nclass P(zeuspy.Plan):\n    def boot(self): pass\n"


def _deep(opening: str, closing: str, depth: int) -> bytes:
    return ('{"command": "true", "plan": {"boot": {"x": ' + opening * depth + closing * depth
            + "}}}").encode()


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.mkdir()


def _device(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")


#: (zeus.json bytes or a function that makes zeus.json something else, the file the message
#: names, a fragment of the message). The plan file, when a case has one, is PLAN_SOURCE unless
#: the case replaces it.
BAD_INPUT: list[tuple[str, object, str, str]] = [
    ("deep arrays", _deep("[", "]", 3000), "zeus.json", ":1:141: invalid JSON: nested deeper than"),
    ("deep objects", _deep('{"a":', "}", 3000), "zeus.json", "nested deeper than 100"),
    ("deep phases", _deep('{"a":', "}", 150), "zeus.json", "invalid JSON: nested deeper than 100"),
    ("5000 digits", b'{"command": "true", "idle_timeout": ' + b"9" * 5000
     + b', "plan": {"boot": {}}}', "zeus.json", ":1:37: invalid JSON: a number of 5000 characters"),
    ("long float", b'{"x": 0.' + b"0" * 5000 + b'1, "command": "true", "plan": {"boot": {}}}',
     "zeus.json", ":1:7: invalid JSON: a number of 5003 characters"),
    ("huge exponent", b'{"idle_timeout": 1e999, "command": "true", "plan": {"boot": {}}}',
     "zeus.json", ":1:18: invalid JSON: the number 1e999 is out of range"),
    ("NaN", b'{"idle_timeout": NaN, "command": "true", "plan": {"boot": {}}}', "zeus.json",
     ":1:18: invalid JSON: NaN is not a JSON value"),
    ("-Infinity", b'{"command": "true",\n "x": -Infinity, "plan": {"boot": {}}}', "zeus.json",
     ":2:7: invalid JSON: -Infinity is not a JSON value"),
    ("NUL outside a string", b'{"plan"\0: {}}', "zeus.json", ":1:8: zeus.json contains a NUL"),
    ("NUL in a string", b'{\n"plan": {"boot": {"a\0": null}}}', "zeus.json",
     ":2:21: zeus.json contains a NUL byte"),
    ("not UTF-8", b'{"command": "true",\n "plan": {"boot": {"\xe9t\xe9": null}}}', "zeus.json",
     ":2:21: zeus.json is not UTF-8 (byte 0xe9)"),
    ("huge file", b"{" + b" " * (2 << 20) + b"}", "zeus.json", "zeus.json is larger than 1024 KiB"),
    ("directory", _directory, "zeus.json", "zeus.json is a folder, not a file"),
    ("FIFO", _fifo, "zeus.json", "zeus.json is a FIFO, not a file"),
    ("device", _device, "zeus.json", "zeus.json is a device, not a file"),
    ("command __init__", b'{"plan": {"boot": {"__init__": null}}}', "zeus.json",
     'node "__init__" cannot be a plan method name (zeuspy.Plan already has `__init__`)'),
    ("phase __class__", b'{"plan": {"boot": {"__class__": {}}}}', "zeus.json",
     'node "__class__" cannot be a plan method name (zeuspy.Plan already has `__class__`)'),
    ("command __repr__", b'{"plan": {"boot": {"__repr__": null}}}', "zeus.json",
     "(zeuspy.Plan already has `__repr__`)"),
    ("command boot_default", b'{"plan": {"boot": {"boot_default": null}}}', "zeus.json",
     "(zeuspy.Plan already has `boot_default`)"),
    ("mangled name", b'{"plan": {"boot": {"__secret": null}}}', "zeus.json",
     "(Python renames methods that start with '__' in a class)"),
    ("NUL in plan_file", b'{"plan_file": "a\\u0000b", "plan": {"boot": {}}}', "zeus.json",
     '"plan_file" contains a NUL character'),
    ("NUL in a command list", b'{"command": ["py\\u0000"], "plan": {"boot": {}}}', "zeus.json",
     '"command" contains a NUL character'),
    ("NUL in a command line", b'{"command": "py\\u0000 x", "plan": {"boot": {}}}', "zeus.json",
     '"command" contains a NUL character'),
    ("long plan_file", b'{"plan_file": "' + b"a" * 5000 + b'", "plan": {"boot": {}}}',
     "a" * 5000, "cannot read the plan file: File name too long"),
]


@pytest.mark.parametrize(("content", "names", "fragment"),
                         [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_one_line(tmp_path: Path, content: object, names: str,
                               fragment: str) -> None:
    path = tmp_path / "zeus.json"
    (tmp_path / "zeus_plan.py").write_text(PLAN_SOURCE)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        assert callable(content)
        content(path)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    message = info.value.message
    assert "\n" not in message, f"not one line: {message!r}"
    assert message.startswith(str(tmp_path / names)), message
    assert fragment in message, message
    assert info.value.exit_code == 2


#: (zeus_plan.py bytes or a function that makes it something else, a fragment of the message).
BAD_PLAN_FILES: list[tuple[str, object, str]] = [
    ("directory", _directory, ": the plan file is a folder, not a file"),
    ("FIFO", _fifo, ": the plan file is a FIFO, not a file"),
    ("NUL", b"import zeuspy\nclass P(zeuspy.Plan):\0\n", ":2:22: the plan file contains a NUL"),
    ("huge", b"#" * (5 << 20), ": the plan file is larger than 4096 KiB"),
    # Python 3.10's parser reads this chain (no recursion): the file is then only planless.
    ("deep attributes", b"x = " + b"a." * 100_000 + b"b\n",
     ": the plan file is nested too deeply" if sys.version_info >= (3, 11)
     else ": defines no subclass of zeuspy.Plan"),
    ("deep unary", b"x = " + b"-" * 200_000 + b"1\n", ": the plan file is nested too deeply"),
    ("class extends itself",
     b"import zeuspy\nclass Q(Q): pass\nclass P(Q, zeuspy.Plan):\n    def boot(self): pass\n",
     ""),
]


@pytest.mark.parametrize(("content", "fragment"), [case[1:] for case in BAD_PLAN_FILES],
                         ids=[case[0] for case in BAD_PLAN_FILES])
def test_bad_plan_file_is_one_line(tmp_path: Path, content: object, fragment: str) -> None:
    plan_file = tmp_path / "zeus_plan.py"
    if isinstance(content, bytes):
        plan_file.write_bytes(content)
    else:
        assert callable(content)
        content(plan_file)
    path = write(tmp_path, plan({"boot": {}}, command=None))
    if not fragment:  # the check copes; Python itself refuses the class when the plan runs
        config.load(path)
        return
    with pytest.raises(ConfigError) as info:
        config.load(path)
    message = info.value.message
    assert "\n" not in message, f"not one line: {message!r}"
    assert message.startswith(str(plan_file)), message
    assert fragment in message, message


#: ([tool.zeus] in pyproject.toml, bytes or a function; a fragment of the message).
BAD_PYPROJECTS: list[tuple[str, object, str]] = [
    ("deep arrays", b"[tool.zeus]\npreload = " + b"[" * 3000 + b"]" * 3000 + b"\n",
     ": invalid TOML: nested too deeply to be read"),
    ("5000 digits", b"[tool.zeus]\nx = " + b"9" * 5000 + b"\n", ": invalid TOML: Exceeds"),
    ("tool is a string", b'tool = "tool.zeus"\n', ""),
    ("not UTF-8", b"[tool.zeus]\npreload = ['\xff']\n", ":2:13: pyproject.toml is not UTF-8"),
    ("NUL", b"[tool.zeus]\0\n", ":1:12: pyproject.toml contains a NUL byte"),
    ("directory", _directory, ": pyproject.toml is a folder, not a file"),
    ("FIFO", _fifo, ": pyproject.toml is a FIFO, not a file"),
]


@pytest.mark.parametrize(("content", "fragment"), [case[1:] for case in BAD_PYPROJECTS],
                         ids=[case[0] for case in BAD_PYPROJECTS])
def test_bad_tool_zeus_is_one_line(tmp_path: Path, content: object, fragment: str) -> None:
    pyproject = tmp_path / "pyproject.toml"
    if isinstance(content, bytes):
        pyproject.write_bytes(content)
    else:
        assert callable(content)
        content(pyproject)
    if not fragment:  # no [tool.zeus] table after all: the defaults
        assert config.load_builtin(tmp_path).builtin == "python"
        return
    with pytest.raises(ConfigError) as info:
        config.load_builtin(tmp_path)
    message = info.value.message
    assert "\n" not in message, f"not one line: {message!r}"
    assert message.startswith(str(pyproject)), message
    assert fragment in message, message


def test_manage_py_fifo_is_not_django(tmp_path: Path) -> None:
    """A manage.py that is a FIFO would block a plain read forever."""
    os.mkfifo(tmp_path / "manage.py")
    assert config.load_builtin(tmp_path).builtin == "python"


@pytest.mark.parametrize(("content", "wanted"), [
    (b'{"autostart": true, "plan": {"boot": {}}}', True),
    (b'{"autostart": false}', False),
    (b'[true]', False),
    (_deep("[", "]", 3000), False),
    (b'{"autostart": true, "x": ' + b"9" * 5000 + b"}", False),
    (_fifo, False),
    (_directory, False),
])
def test_wants_autostart_never_raises(tmp_path: Path, content: object, wanted: bool) -> None:
    """What the client asks when no master answers: a bad zeus.json is a no, not a traceback
    (`zeus start` reports it)."""
    path = tmp_path / "zeus.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        assert callable(content)
        content(path)
    assert config.wants_autostart(tmp_path) is wanted
    assert config.wants_autostart(tmp_path / "missing") is False


@pytest.mark.parametrize(("zeus_json", "pyproject", "wanted"), [
    (None, "[tool.zeus]\nautostart = true\n", True),
    (None, "[tool.zeus]\nautostart = false\n", False),
    (None, "[tool.zeus]\nautostart = 'yes'\n", False),  # wrong: `zeus start` says so
    (b'{"autostart": false}', "[tool.zeus]\nautostart = true\n", False),  # zeus.json first
    (b'{"plan": {"boot": {}}}', "[tool.zeus]\nautostart = true\n", True),
])
def test_autostart_in_tool_zeus(tmp_path: Path, zeus_json: bytes | None, pyproject: str,
                                wanted: bool) -> None:
    """Every setting is accepted in [tool.zeus]: autostart too (zeus.json's own wins)."""
    (tmp_path / "pyproject.toml").write_text(pyproject)
    if zeus_json is not None:
        (tmp_path / "zeus.json").write_bytes(zeus_json)
    assert config.wants_autostart(tmp_path) is wanted


@pytest.mark.parametrize("where", ["folder", "missing/trace.log"])
def test_log_file_that_cannot_be_opened_is_one_line(tmp_path: Path, where: str) -> None:
    """`zeus start --log PATH` (an argument, not a file of the plan): one line, exit 2."""
    from zeuspy.errors import UsageError
    from zeuspy.master.app import TransitionTrace

    (tmp_path / "folder").mkdir()
    with pytest.raises(UsageError) as info:
        TransitionTrace(str(tmp_path / where))
    assert info.value.message.startswith(f"{tmp_path / where}: cannot open the --log file: ")
    assert "\n" not in info.value.message
    assert info.value.exit_code == 2


def test_log_trace_stamp_is_one_clock_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seconds and milliseconds of a --log line come from one reading of the clock: from two,
    a line stamped at x.999 could read the seconds after the tick and go back by ~1 s."""
    import time
    from types import SimpleNamespace

    from zeuspy.master.app import TransitionTrace

    monkeypatch.setattr(time, "time", lambda: 1_000_000_000.9995)
    trace = TransitionTrace(str(tmp_path / "trace.log"))
    state = SimpleNamespace
    trace.on_transition(SimpleNamespace(name="app", boot_seconds=0.5), state(value="booting"),
                        state(value="ready"))
    trace.file.close()
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(1_000_000_000.9995))
    assert (tmp_path / "trace.log").read_text() == f"{seconds}.999 app booting -> ready (0.500 s)\n"
