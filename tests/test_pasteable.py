"""The lesson's building blocks can be pasted into a fresh notebook.

Each function's source (inspect.getsource) is exec'd in a clean namespace holding only the
third-party imports it uses (import keras, from keras import layers, import tensorflow as tf, ...),
then called: it must build a model of the right output shape, or mask a batch correctly.
A function that reads other names of its module (helpers, constants) cannot be pasted alone;
BLOCKERS lists them, and the test that pastes the function alone is an expected failure for them.
"""
import ast
import builtins
import dis
import inspect
import types

import numpy as np
import pytest

import mnist_ds
import pix2pix

PROJECT_MODULES = {"pix2pix", "mnist_ds", "utils", "visual"}  # a pasted snippet cannot import these

# Names each function needs from its own module besides imports, helpers of helpers included.
# To paste the function, paste these too. Update this dict when the code changes.
BLOCKERS = {
    "unet": {"unet_layout", "downsample", "upsample", "INIT"},
    "patch_discriminator": {"downsample", "INIT"},
    "mask_square": set(),
}


def check_unet(namespace):
    generator = namespace["unet"]((28, 28, 1), filters=8, max_filters=16)
    fake = generator(np.zeros((2, 28, 28, 1), np.float32), training=False)
    assert tuple(fake.shape) == (2, 28, 28, 1)
    assert np.all(np.abs(fake) <= 1.0)  # tanh


def check_patch_discriminator(namespace):
    discriminator = namespace["patch_discriminator"]((28, 28, 1), filters=8)
    pair = np.zeros((2, 28, 28, 1), np.float32)
    assert tuple(discriminator([pair, pair]).shape) == (2, 5, 5, 1)  # a 5x5 grid of patch logits


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
    "unet": (pix2pix.unet, check_unet),
    "patch_discriminator": (pix2pix.patch_discriminator, check_patch_discriminator),
    "mask_square": (mnist_ds.mask_square, check_mask_square),
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


def constant_source(module, name):
    """Source of the top-level assignment `name = ...` in module."""
    source = inspect.getsource(module)
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.get_source_segment(source, node)
    raise LookupError(f"{module.__name__}.{name} is neither a function nor a top-level constant")


def paste(func, with_helpers):
    """(source to exec, names pasted besides func): imports first, then constants, then functions."""
    module = inspect.getmodule(func)
    imports = module_imports(module)
    todo, pasted, used_imports = [func.__name__], {}, set()
    while todo:
        name = todo.pop()
        obj = getattr(module, name)
        if isinstance(obj, types.FunctionType):
            pasted[name] = inspect.getsource(obj)
            needed = global_names(obj)
        else:
            pasted[name] = constant_source(module, name)
            needed = {n.id for n in ast.walk(ast.parse(pasted[name])) if isinstance(n, ast.Name)}
            needed -= {name, *dir(builtins)}
        used_imports |= needed & imports.keys()
        if with_helpers:
            todo += [n for n in needed - imports.keys() - pasted.keys() if n not in todo]
    is_function = {name: isinstance(getattr(module, name), types.FunctionType) for name in pasted}
    constants = [src for name, src in pasted.items() if not is_function[name]]
    functions = [src for name, src in pasted.items() if is_function[name]]
    source = "\n".join(sorted({imports[name] for name in used_imports})) + "\n\n"
    source += "\n".join(constants) + "\n\n\n" + "\n\n".join(functions)
    return source, set(pasted) - {func.__name__}


@pytest.mark.parametrize("name", CASES)
def test_blockers_are_as_documented(name):
    func = CASES[name][0]
    _, helpers = paste(func, with_helpers=True)
    assert helpers == BLOCKERS[name], f"{name} now needs {sorted(helpers)}: update BLOCKERS"


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(
        raises=NameError, strict=True,
        reason=f"{name} reads {', '.join(sorted(BLOCKERS[name]))} from {CASES[name][0].__module__}.py, "
               f"so it must be pasted together with them"))
    if BLOCKERS[name] else name
    for name in CASES])
def test_function_pastes_alone(name):
    func, check = CASES[name]
    source, _ = paste(func, with_helpers=False)
    namespace = {}
    exec(compile(source, f"<pasted {name}>", "exec"), namespace)
    check(namespace)


@pytest.mark.parametrize("name", CASES)
def test_function_pastes_with_its_helpers(name):
    func, check = CASES[name]
    source, _ = paste(func, with_helpers=True)
    assert not any(f"import {m}" in source or f"from {m} " in source for m in PROJECT_MODULES)
    namespace = {}
    exec(compile(source, f"<pasted {name} and helpers>", "exec"), namespace)
    check(namespace)
