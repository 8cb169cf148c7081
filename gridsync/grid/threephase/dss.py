"""Reader for the subset of the OpenDSS script language that distribution test feeders use.

It turns ``.dss`` files into plain element records (class, name, properties in order) that
``gridsync.grid.threephase.build`` turns into admittance matrices. It does not run OpenDSS:
the feeders ship as the published text files and are read here, so OpenDSS (DSS-Python) stays
an independent reference used only by the tests and the benchmark.

Supported: ``New``/``Edit``/``~`` continuation, ``Class.Name.prop=value`` edits, ``Redirect``,
``Set`` (base frequency, voltage bases, control mode), ``BatchEdit``, comments (``!`` and
``//``), quoted/bracketed values, lower-triangular matrices ``(a | b c | ...)`` and the in-line
RPN arithmetic of the IEEE test cases (``XHL=(8 1000 /)``). Commands that only report or plot
(``solve``, ``calcv``, ``buscoords``, ``show``, ``plot``) are skipped.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from pathlib import Path

SKIPPED_COMMANDS = {"solve", "calcv", "calcvoltagebases", "buscoords", "show", "plot", "clear"}
_OPEN_CLOSE = {"(": ")", "[": "]", "{": "}", '"': '"', "'": "'"}
_RPN_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


class DSSError(ValueError):
    """A ``.dss`` script uses syntax or an element this reader does not support."""


@dataclass
class Element:
    """One circuit element: ``cls`` (lower case, e.g. ``line``), ``name`` and its properties
    as (lower-case key, raw string value) pairs in the order given."""

    cls: str
    name: str
    props: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str, default: str | None = None) -> str | None:
        value = default
        for k, v in self.props:
            if k == key:
                value = v
        return value


@dataclass
class Circuit:
    """The parsed script: elements by (class, name) in definition order and the options set."""

    name: str = ""
    elements: dict[tuple[str, str], Element] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)

    def of_class(self, cls: str) -> list[Element]:
        return [e for (c, _), e in self.elements.items() if c == cls]


def _strip_comment(line: str) -> str:
    if "!" not in line and "//" not in line:
        return line
    depth_quote = None
    for i, ch in enumerate(line):
        if depth_quote:
            if ch == depth_quote:
                depth_quote = None
            continue
        if ch in "\"'":
            depth_quote = ch
        elif ch == "!" or line.startswith("//", i):
            return line[:i]
    return line


def tokenize(text: str) -> list[tuple[str | None, str]]:
    """Split one command's argument text into (key or None, value) pairs."""
    tokens: list[tuple[str | None, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        key = None
        m = re.match(r"([A-Za-z0-9_%\-\.]+)\s*=\s*", text[i:])
        if m and text[i] not in _OPEN_CLOSE:
            key = m.group(1).lower()
            i += m.end()
        if i < n and text[i] in _OPEN_CLOSE:
            close = _OPEN_CLOSE[text[i]]
            j = text.find(close, i + 1)
            if j < 0:
                msg = f"unbalanced {text[i]!r} in {text!r}"
                raise DSSError(msg)
            value = text[i + 1 : j]
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in " \t,":
                j += 1
            value = text[i:j]
            i = j
        tokens.append((key, value))
    return tokens


def number(value: str) -> float:
    """A scalar, evaluating in-line RPN such as ``8 1000 /``."""
    parts = value.replace(",", " ").split()
    if len(parts) == 1:
        return float(parts[0])
    stack: list[float] = []
    for p in parts:
        if p in _RPN_OPS:
            b, a = stack.pop(), stack.pop()
            stack.append(_RPN_OPS[p](a, b))
        else:
            stack.append(float(p))
    if len(stack) != 1:
        msg = f"cannot read {value!r} as a number"
        raise DSSError(msg)
    return stack[0]


def numbers(value: str) -> list[float]:
    """A list of numbers (``[1 2 3]`` or ``1, 2, 3``)."""
    return [float(x) for x in value.replace(",", " ").replace("|", " ").split()]


def strings(value: str) -> list[str]:
    return value.replace(",", " ").split()


def lower_triangle(value: str) -> list[list[float]]:
    """Rows of a lower-triangular (or full) matrix written ``a | b c | d e f``."""
    return [[float(x) for x in row.replace(",", " ").split()] for row in value.split("|")]


class _Reader:
    def __init__(self) -> None:
        self.circuit = Circuit()
        self.active: Element | None = None

    def element(self, cls: str, name: str, new: bool) -> Element:
        key = (cls, name.lower())
        if new or key not in self.circuit.elements:
            if not new:
                msg = f"Edit of undefined element {cls}.{name}"
                raise DSSError(msg)
            self.circuit.elements[key] = Element(cls, name.lower())
        return self.circuit.elements[key]

    def run_file(self, path: Path) -> None:
        if not path.exists():
            msg = f"OpenDSS file {str(path)!r} does not exist"
            raise FileNotFoundError(msg)
        lines = path.read_text(errors="replace").splitlines()
        in_block_comment = False
        for raw in lines:
            line = raw.strip()
            if in_block_comment:
                in_block_comment = "*/" not in line
                continue
            if line.startswith("/*"):
                in_block_comment = "*/" not in line
                continue
            line = _strip_comment(line).strip()
            if line:
                self.command(line, path.parent)

    def command(self, line: str, base: Path) -> None:
        head, _, rest = line.partition(" ")
        verb = head.lower()
        if verb == "~" or verb == "more":
            if self.active is None:
                msg = f"continuation line without an element: {line!r}"
                raise DSSError(msg)
            self._props(self.active, rest)
        elif verb in ("new", "edit"):
            target, _, args = rest.strip().partition(" ")
            if "=" in target:  # "New object=line.x" form
                target = target.split("=", 1)[1]
            cls, _, name = target.partition(".")
            if cls.lower() == "circuit":  # a circuit is born with its Vsource.Source
                self.circuit.name = name.lower()
                cls, name = "vsource", "source"
            self.active = self.element(cls.lower(), name, verb == "new")
            self._props(self.active, args)
        elif verb in ("redirect", "compile"):
            target = rest.strip().strip("[]\"'")
            self.run_file(base / target)
        elif verb == "set":
            for key, value in tokenize(rest):
                if key is not None:
                    self.circuit.options[key] = value
        elif verb == "batchedit":
            target, _, args = rest.strip().partition(" ")
            cls, _, pattern = target.partition(".")
            rx = re.compile(pattern.replace("*", ".*"), re.IGNORECASE)
            for el in self.circuit.of_class(cls.lower()):
                if rx.fullmatch(el.name):
                    self._props(el, args)
        elif verb in SKIPPED_COMMANDS:
            return
        elif "." in head and "=" in line:  # Transformer.Reg1.Taps=[1 1.0625]
            target, _, value = line.partition("=")
            cls, name, prop = (
                target.strip().rsplit(".", 2) if target.count(".") >= 2 else (None,) * 3
            )
            if cls is None:
                msg = f"cannot read {line!r}"
                raise DSSError(msg)
            el = self.element(cls.lower(), name, False)
            self._props(el, f"{prop}={value.strip()}")
        else:
            msg = f"unsupported OpenDSS command {head!r} in {line!r}"
            raise DSSError(msg)

    def _props(self, el: Element, args: str) -> None:
        for key, value in tokenize(args):
            if key is None:
                msg = f"{el.cls}.{el.name}: positional property {value!r} is not supported; use key=value"
                raise DSSError(msg)
            el.props.append((key, value))


def read_dss(path: str | Path) -> Circuit:
    """Parse ``path`` and every file it redirects to."""
    reader = _Reader()
    reader.run_file(Path(path))
    return reader.circuit
