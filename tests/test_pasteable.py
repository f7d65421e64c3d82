"""The lesson's building blocks can be pasted alone into a fresh file.

Each function's source (inspect.getsource) is exec'd in a clean namespace holding only the
imports it uses (import keras, from keras import layers, import tensorflow as tf, ...), then
called: it must build a model of the right output shape, or mask a batch correctly.
"""
import ast
import builtins
import dis
import inspect
import os
import types

import numpy as np
import pytest

import nets
import tasks
from conftest import ROOT

# a pasted snippet cannot import these: every module of the project
PROJECT_MODULES = {name[:-3] for name in os.listdir(ROOT) if name.endswith(".py")}


def check_unet(namespace):
    generator = namespace["unet"]((28, 28, 1), filters=8, max_filters=16)
    fake = generator(np.zeros((2, 28, 28, 1), np.float32), training=False)
    assert tuple(fake.shape) == (2, 28, 28, 1)
    assert np.all(np.abs(fake) <= 1.0)  # tanh


def check_patch_discriminator(namespace):
    discriminator = namespace["patch_discriminator"]((28, 28, 1), filters=8)
    pair = np.zeros((2, 28, 28, 1), np.float32)
    assert tuple(discriminator([pair, pair]).shape) == (2, 2, 2, 1)  # a 2x2 grid of patch logits


def check_mask_square(namespace):
    images = np.full((6, 28, 28, 1), 0.5, np.float32)
    masked, hole = namespace["mask_square"](images, seed=(0, 1))
    masked, hole = np.asarray(masked), np.asarray(hole)
    assert masked.shape == images.shape and hole.shape == (6, 28, 28, 1)
    np.testing.assert_array_equal(masked, np.where(hole == 1.0, 0.0, images))  # 0.0 inside, unchanged outside
    for one in hole[..., 0]:
        rows, cols = np.nonzero(one)
        side = rows.max() - rows.min() + 1
        assert 10 <= side <= 15 and cols.max() - cols.min() + 1 == side and len(rows) == side * side  # a square


CASES = {
    "unet": (nets.unet, check_unet),
    "patch_discriminator": (nets.patch_discriminator, check_patch_discriminator),
    "mask_square": (tasks.mask_square, check_mask_square),
}


def module_imports(module):
    """{name: import statement} for the module's top-level imports of stdlib and third-party modules."""
    found = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in PROJECT_MODULES:
                    found[alias.asname or alias.name.split(".")[0]] = (
                        f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else ""))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (
                node.module.split(".")[0] not in PROJECT_MODULES):
            for alias in node.names:
                found[alias.asname or alias.name] = (
                    f"from {node.module} import {alias.name}" + (f" as {alias.asname}" if alias.asname else ""))
    return found


def global_names(func):
    """Module-level names `func` reads: global loads in its code and nested code (lambdas,
    comprehensions), plus names in its default values and decorators. Builtins excluded."""
    names, codes = set(), [func.__code__]
    while codes:
        code = codes.pop()
        names |= {ins.argval for ins in dis.get_instructions(code)
                  if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
        codes += [const for const in code.co_consts if isinstance(const, types.CodeType)]
    definition = ast.parse(inspect.getsource(func)).body[0]
    for expr in [*definition.args.defaults, *definition.args.kw_defaults, *definition.decorator_list]:
        names |= {node.id for node in ast.walk(expr or ast.Constant(None)) if isinstance(node, ast.Name)}
    return names - set(dir(builtins))


def project_helpers(func):
    """The project's functions that `func` reads from other lesson modules (as unet reads
    config.unet_depth): a reader pastes them with it."""
    module = inspect.getmodule(func)
    found = [getattr(module, name, None) for name in sorted(global_names(func))]
    return [helper for helper in found if inspect.isfunction(helper)
            and inspect.getmodule(helper).__name__ in PROJECT_MODULES - {module.__name__}]


def paste(func):
    """Source to exec: the imports that `func` and its project helpers use, then their sources;
    and the module-level names they read that are not imports (missing in a fresh file)."""
    sources, needed, imports = [], set(), {}
    for piece in [*project_helpers(func), func]:
        imports.update(module_imports(inspect.getmodule(piece)))
        needed |= global_names(piece) - {helper.__name__ for helper in project_helpers(func)}
        sources.append(inspect.getsource(piece))
    source = "\n".join(sorted({imports[name] for name in needed & imports.keys()}))
    return source + "\n\n" + "\n\n".join(sources), needed - imports.keys()


@pytest.mark.parametrize("name", CASES)
def test_function_pastes_alone(name):
    func, check = CASES[name]
    source, missing = paste(func)
    assert not missing, f"{name} reads {sorted(missing)} from its module: it cannot be pasted alone"
    assert not any(f"import {m}" in source or f"from {m} " in source for m in PROJECT_MODULES)
    namespace = {}
    exec(compile(source, f"<pasted {name}>", "exec"), namespace)
    check(namespace)


@pytest.mark.slow
def test_the_readme_snippet_runs_as_printed(tmp_path, monkeypatch):
    """README's "Paste a piece" block, run as a reader would paste it, with 2 steps of 1 epoch instead
    of 5 epochs: it must train and fill a validation batch of the right shape and range."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme[readme.index("## Paste a piece"):]
    code = section[section.index("```python") + len("```python"):section.index("```\n", section.index("```python"))]
    assert "epochs=5)" in code and "steps_per_epoch=steps" in code
    code = code.replace("steps_per_epoch=steps", "steps_per_epoch=2, validation_steps=1").replace(
        "epochs=5)", "epochs=1, verbose=0)")
    monkeypatch.chdir(tmp_path)  # writes nothing, and must not need the repository as its folder
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    filled = np.asarray(namespace["filled"])
    assert filled.shape == (64, 28, 28, 1) and np.all(np.abs(filled) <= 1.0)
