"""The shape of the house: the lesson at the root, the tools in one package that the lesson never
imports, no import cycles, a command line that
answers --help without TensorFlow, run-file names written in one place, and a current flag reference."""
import ast
import os

import pytest

import config
from conftest import ROOT, run_python
from tools import cli

LESSON = sorted(name[:-3] for name in os.listdir(ROOT) if name.endswith(".py"))  # the root's modules
TOOLS = sorted("tools." + name[:-3] for name in os.listdir(os.path.join(ROOT, "tools")) if name.endswith(".py")
               and name != "__init__.py")
MODULES = LESSON + TOOLS


def module_path(name):
    return os.path.join(ROOT, *name.split(".")) + ".py"


def is_main_block(node):
    """True for `if __name__ == "__main__":`, the script's part of a module."""
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__")


def imported_modules(tree):
    """Project modules that `tree` imports anywhere (in functions and script parts too): lesson
    modules by name, the package's as "tools.NAME" (`from tools import cli` counts as tools.cli)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module)
            if node.module == "tools":
                found |= {f"tools.{alias.name}" for alias in node.names}
    return found & set(MODULES)


def import_graph(skip_main=False):
    """{module: set of project modules it imports}, read from the source with ast; with skip_main,
    leaving out the script parts (`if __name__ == "__main__":`)."""
    graph = {}
    for name in MODULES:
        with open(module_path(name), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        if skip_main:
            tree.body = [node for node in tree.body if not is_main_block(node)]
        graph[name] = imported_modules(tree) - {name}
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules [a, b, ..., a], or None."""
    state = {}  # module -> "open" while on the path, "done" after

    def visit(module, path):
        state[module] = "open"
        for other in sorted(graph[module]):
            if state.get(other) == "open":
                return path[path.index(other):] + [other]
            if other not in state:
                cycle = visit(other, path + [other])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def test_the_modules_import_each_other_without_a_cycle():
    graph = import_graph(skip_main=True)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert {m for m, imports in graph.items() if "tools.cli" in imports} == set()  # pix2pix's script part only
    assert graph["config"] == set()                                               # the settings at the bottom


def test_the_lesson_imports_nothing_from_the_tools():
    """The root's files copied into a lesson's folder run as they are: outside pix2pix.py's script
    part, no root module imports the package; the package imports the lesson, never the reverse."""
    graph = import_graph(skip_main=True)
    assert {m: graph[m] & set(TOOLS) for m in LESSON if graph[m] & set(TOOLS)} == {}
    assert len(LESSON) <= 8, f"the root holds {len(LESSON)} modules: {LESSON}"
    assert {"pix2pix", "nets", "mnist_ds", "tasks", "visual", "utils", "config"} <= set(LESSON)


def test_the_lesson_model_file_stays_short():
    with open(module_path("pix2pix"), encoding="utf-8") as f:
        assert len(f.read().splitlines()) <= 250


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, **{m: set() for m in MODULES}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), **{m: set() for m in MODULES}}) is None


def test_pix2pix_reads_the_command_line_before_its_own_imports():
    """Run as a script, pix2pix.py reads the flags (cli.parse_command) before TensorFlow loads and
    runs the command at its end, with its own train: the file runs once, as __main__."""
    with open(os.path.join(ROOT, "pix2pix.py"), encoding="utf-8") as f:
        body = ast.parse(f.read()).body
    first_import = next(i for i, node in enumerate(body) if isinstance(node, (ast.Import, ast.ImportFrom)))
    main = [i for i, node in enumerate(body) if is_main_block(node)]
    assert len(main) == 2 and main[0] < first_import and main[1] == len(body) - 1
    assert imported_modules(ast.Module(body=body[main[0]].body, type_ignores=[])) == {"tools.cli"}


def run_pix2pix_timing_imports(args):
    """Run `python -X importtime pix2pix.py ARGS`; returns the CompletedProcess and the set of
    top-level packages it imported (from importtime's lines on stderr)."""
    result = run_python(["-X", "importtime", os.path.join(ROOT, "pix2pix.py"), *args])
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    return result, imported


@pytest.mark.parametrize("command", [[], ["predict"], ["export"], ["demo"], ["evaluate"], ["ablation"], ["download"]])
def test_help_answers_without_importing_tensorflow(command):
    result, imported = run_pix2pix_timing_imports([*command, "--help"])
    assert result.returncode == 0 and "usage: pix2pix.py" in result.stdout
    assert "argparse" in imported and not imported & {"tensorflow", "keras", "numpy"}


@pytest.mark.parametrize("flags", [["--hole-max", "40"], ["--data", "no_such_folder"], ["--task", "colorize"],
                                   ["evaluate", "--model", "docs", "--data", "docs"]])
def test_bad_flags_are_refused_without_importing_tensorflow(flags):
    """A usage error answers in a fraction of a second: the preset (which looks at --data) and the
    checks run before TensorFlow loads."""
    result, imported = run_pix2pix_timing_imports(flags)
    assert result.returncode == 2 and "error:" in result.stderr.splitlines()[-1]
    assert "argparse" in imported and not imported & {"tensorflow", "keras", "numpy"}


def test_a_text_file_as_model_and_a_damaged_image_are_refused_before_tensorflow_loads(tmp_path):
    """predict's inputs are checked as flags are: in a fraction of a second, in one line."""
    (tmp_path / "notes.keras").write_text("epochs: 15\n")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "digit.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))   # a PNG cut short
    for args, message in ((["--model", str(tmp_path / "notes.keras")], "notes.keras is not a saved Keras model"),
                          ([], "digit.png: not a readable image")):
        result, imported = run_pix2pix_timing_imports(["predict", *args, "--input", str(tmp_path / "in"),
                                                       "--output", str(tmp_path / "out")])
        last = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 1 and message in last and last.startswith("pix2pix.py predict: error:")
        assert not imported & {"tensorflow", "keras"}


def test_run_file_names_are_written_only_in_config():
    names = set(vars(config.RunFiles("")).values()) - {""}
    assert "pix2pix.weights.h5" in names and "generator.keras" in names
    for module in MODULES:
        if module == "config":
            continue
        with open(module_path(module), encoding="utf-8") as f:
            constants = {node.value for node in ast.walk(ast.parse(f.read())) if isinstance(node, ast.Constant)}
        assert not constants & names, f"{module}.py spells out {constants & names}: use config.RunFiles"


def test_flag_reference_is_current():
    with open(os.path.join(ROOT, "docs", "flags.md"), encoding="utf-8") as f:
        written = f.read()
    assert written == cli.flag_reference() + "\n", (
        "docs/flags.md is out of date: python -c \"from tools import cli; print(cli.flag_reference())\" "
        "> docs/flags.md")
