"""What a .pt2 file may hold before torch opens it.

torch.export.load trusts its file ("never load data from an untrusted source", its docs say): it
unpickles sample inputs (falling back to weights_only=False), weights and constants marked use_pickle
and custom objects; evaluates symbolic sizes with sympy.sympify (Python's eval); runs the program's
guards as Python code; and looks up call targets by name. `check_pt2` lets through only what
stylenet's own exports hold. Members are named as torch's reader finds them: case-insensitively.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from stylenet.checkpoint import CheckpointError
from stylenet.torch_files import expansion_problem

_PICKLED = ("data/sample_inputs/", "data/weights/", "data/constants/")
_CONFIGS = (("data/weights/", "_weights_config.json"), ("data/constants/", "_constants_config.json"))
_OPERATOR = re.compile(
    r"torch\.ops\.aten\.(?!__)\w+\.(?!__)\w+|_operator\.(add|sub|mul|floordiv|truediv|mod|neg|pow|getitem)", re.ASCII
)
# Names in the sizes torch.export writes (sympy's srepr): sympy's and torch.utils._sympy.functions' classes.
_SYMPY_NAMES = frozenset(
    "Symbol Integer Rational Add Mul Pow Max Min Abs Eq Ne Lt Le Gt Ge StrictLessThan LessThan StrictGreaterThan "
    "GreaterThan Equality Unequality And Or Not True False oo positive negative nonnegative nonpositive integer "
    "real finite commutative FloorDiv ModularIndexing Where PythonMod Mod CleanDiv CeilToInt FloorToInt CeilDiv "
    "LShift RShift PowByNatural FloatPow FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator TruncToFloat "
    "TruncToInt RoundToInt RoundDecimal ToFloat Identity".split()
)
_SYMPY_TEXT = re.compile(r"(?:\s+|\w+|'\w*'|[-+*/(),=])*", re.ASCII)
_TREE_TYPES = (None, "builtins.tuple", "builtins.list", "builtins.dict")
_NAME = re.compile(r"[\w.]*", re.ASCII)  # node, argument, parameter and module names; device types
_METADATA = re.compile(r"[\w.,;]*", re.ASCII)  # nn_module_stack, torch_fn: kept as text
_TEXT_KEYS = ("stack_trace", "torch_version", "as_string")  # text torch shows or passes on, never runs


def check_pt2(path: Path, compiled: bool = False) -> io.BytesIO:
    """The bytes of the .pt2 file at `path`, for torch to load these and no others; one CheckpointError line
    for a file that torch would make run code while loading it.

    Every member torch would unpickle must pass the weights-only unpickler: bytes that it accepts name
    allowed globals only, so unpickling them again without the restriction cannot run code either. The
    programs may hold only aten operators, sizes in sympy's arithmetic and plain names, and no guards.
    `compiled`: an AOTInductor package, whose machine code runs as it is (no check can vouch for it)."""
    kind = "compiled package" if compiled else ".pt2 program"
    expands = expansion_problem(path)
    if expands:
        raise CheckpointError(f"{path}: refused, {expands}")
    try:
        data = io.BytesIO(path.read_bytes())
        with zipfile.ZipFile(data) as archive:  # what torch falls back to for its old format
            legacy = "version" in archive.namelist()
        reason = "it is of torch's old export format" if legacy else _unsafe(data, compiled)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path}: not a readable {kind} ({error.__class__.__name__})") from error
    if reason:
        raise CheckpointError(f"{path}: refused, {reason}; a model file must not run code when opened")
    data.seek(0)
    return data


def _unsafe(data: io.BytesIO, compiled: bool) -> str | None:
    """Why loading the archive in `data` would run code, or None; read with torch's own reader, as torch reads it."""
    data.seek(0)
    reader = torch._C.PyTorchFileReader(data)
    names = reader.get_all_records()
    keys = [name.lower() for name in names]
    if len(set(keys)) != len(keys) or not all(name.isascii() for name in names):
        return "two of its members may be taken for one another"
    raw = _raw_payloads(reader, names)
    for name, key in zip(names, keys, strict=True):
        if key.startswith("data/aotinductor/") and not compiled:
            return "it holds compiled code"
        if key.startswith("models/"):
            problem = _program_problem(json.loads(reader.get_record(name)))
            if problem:
                return f"{name} {problem}"
        elif key.startswith(_PICKLED) and key not in raw and not _weights_only(reader.get_record(name)):
            return f"{name} is a pickle that could run code"
    return None


def _raw_payloads(reader: Any, names: list[str]) -> set[str]:
    """The members (lower case) that torch reads as JSON or as raw tensor bytes, never unpickling them."""
    raw, pickled = set(), set()
    for name in names:
        for folder, ending in _CONFIGS:
            key = name.lower()
            if not (key.startswith(folder) and key.endswith(ending)):
                continue
            raw.add(key)
            for entry in json.loads(reader.get_record(name))["config"].values():
                path_name = entry["path_name"]
                tensor = folder == "data/weights/" or path_name.startswith("tensor_")
                (raw if entry["use_pickle"] is False and tensor else pickled).add(folder + path_name.lower())
    return {key for key in raw - pickled if not key.endswith(".pt")}  # NAME.pt: the old format, a pickle


def _weights_only(data: bytes) -> bool:
    try:
        torch.load(io.BytesIO(data), weights_only=True)
    except Exception:  # whatever the weights-only unpickler refuses, or bytes that are no pickle at all
        return False
    return True


def _program_problem(program: Any) -> str | None:
    """What in a program's JSON stylenet's exports never hold and torch would run, or None."""
    stack: list[tuple[str, Any]] = [("", program)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.items())
        elif isinstance(value, list):
            stack.extend((key, item) for item in value)
        elif isinstance(value, str) and not _allowed(key, value):
            return f"holds {key} {value[:80]!r}"
    return None


def _allowed(key: str, value: str) -> bool:
    if key in ("target", "as_operator"):
        return bool(_OPERATOR.fullmatch(value))
    if key == "expr_str":
        return bool(_SYMPY_TEXT.fullmatch(value)) and all(
            name in _SYMPY_NAMES for name in re.findall(r"'\w*'|([^\W\d]\w*)", value, re.ASCII) if name
        )
    if key in ("in_spec", "out_spec"):
        return _plain_tree(value)
    if key in ("nn_module_stack", "torch_fn"):
        return bool(_METADATA.fullmatch(value))
    return key in _TEXT_KEYS or bool(_NAME.fullmatch(value))


def _plain_tree(text: str) -> bool:
    """Whether a serialized pytree spec holds only tuples, lists and dicts (others import modules by name)."""
    try:
        nodes = [json.loads(text)[1]]
        while nodes:
            node = nodes.pop()
            context = node["context"]
            if node["type"] not in _TREE_TYPES or (context is not None and "__enum__" in context):
                return False
            nodes.extend(node["children_spec"])
    except (ValueError, TypeError, KeyError, IndexError):
        return False
    return True
