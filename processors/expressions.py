"""Safe, vectorised selection-cut expressions for analysis configs.

Configs write cuts as strings over event columns (``mt_lep1 > 10 and abs(lep1_eta) < 2.47``).
They come from user files, so they are never handed to ``eval`` or ``exec`` nor compiled to
code: a cut is parsed with ``ast.parse(text, mode="eval")`` (a syntax tree only), each node
is checked against a whitelist, and the tree becomes, once, numpy operations on whole
columns.  Allowed, with Python's precedence: numbers ``12 2.47 .5 1e3 2.5E-2`` (not ``0x10
1_000 1j``); column names ``[A-Za-z_][A-Za-z0-9_]*``; ``+ - * /``; unary ``- +``; one
comparison ``< <= > >= == !=`` per pair of operands (``0 < x < 1`` is refused: write ``0 < x
and x < 1``); ``and or not``; parentheses; positional calls of :data:`FUNCTIONS` (``abs sqrt
cos sin``, element-wise ``min max`` of two).  Everything else is a :class:`CutSyntaxError`
naming the problem and its column: strings, attribute access, indexing, ``lambda``, ``** //
%``, bit operators, keywords (``if in is for`` ...), keyword or ``*`` arguments, other
calls, tuples, comprehensions, f-strings, ``:=``.  Characters other than letters, digits,
whitespace and ``. + - * / < > = ! ( ) ,`` are refused before parsing, and so are cuts over
:data:`MAX_LENGTH` characters, with more than :data:`MAX_NESTING` levels of parentheses (or
of signs, ``not`` and calls), or with syntax trees deeper than :data:`MAX_DEPTH`.

Types are checked when parsing: arithmetic and ordering need numbers, ``and or not``
conditions; a bare column may be a condition if it holds booleans (checked when evaluating).

Evaluation (numpy): true division, ``x / 0`` gives ``inf``/``nan`` silently; **any comparison
with NaN is False** (a NaN event fails ``x > 1`` and ``x <= 1`` but passes ``not x > 1``;
``sqrt`` of a negative number is NaN); integer columns narrower than 64 bits are widened to
``int64`` (``n - 3 < 0`` cannot wrap around on ``uint8``), floats keep their precision.
Columns must be flat (numpy or awkward, one value per event); jagged or option-type arrays
are refused with an error naming the column.
"""

from __future__ import annotations

import ast
import keyword
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.core.errors import UserError

__all__ = ["FUNCTIONS", "CutEvaluationError", "CutExpression", "CutSyntaxError", "UnknownColumnError", "parse_cut"]

#: Whitelisted functions: name -> (number of arguments, numpy implementation).
FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "abs": (1, np.abs), "sqrt": (1, np.sqrt), "cos": (1, np.cos), "sin": (1, np.sin),
    "min": (2, np.minimum), "max": (2, np.maximum),
}
MAX_LENGTH = 10_000  #: longest cut accepted, in characters
MAX_NESTING = 32  #: deepest nesting of parentheses, and separately of signs, ``not`` and calls
MAX_DEPTH = 64  #: deepest syntax tree (``and``/``or`` chains are flat, long sums are deep)

_ARITHMETIC = {ast.Add: ("+", np.add), ast.Sub: ("-", np.subtract), ast.Mult: ("*", np.multiply),
               ast.Div: ("/", np.true_divide)}
_REFUSED_OPERATORS = {ast.Pow: "**", ast.FloorDiv: "//", ast.Mod: "%", ast.LShift: "<<", ast.RShift: ">>",
                      ast.BitOr: "|", ast.BitAnd: "&", ast.BitXor: "^", ast.MatMult: "@"}
_COMPARE = {ast.Lt: ("<", np.less), ast.LtE: ("<=", np.less_equal), ast.Gt: (">", np.greater),
            ast.GtE: (">=", np.greater_equal), ast.Eq: ("==", np.equal), ast.NotEq: ("!=", np.not_equal)}
_HINTS = {
    "&": "use 'and'", "&&": "use 'and'", "|": "use 'or'", "||": "use 'or'", "!": "use 'not'", "~": "use 'not'",
    "=": "use '==' to compare", "**": "powers are not supported; write x * x", "^": "powers are not supported; "
    "write x * x", "%": "the modulo operator is not supported", "//": "use '/'", "'": "strings are not supported",
    '"': "strings are not supported", ".": "attribute access is not supported; name the column directly",
    "[": "indexing is not supported; name a flat column",
}
_KEYWORDS = frozenset(keyword.kwlist) - {"and", "or", "not"}
# Checked before parsing: names (no keywords), comparisons, a lone '=', '!' or other character, parentheses.
_LEXICAL = re.compile(r"(?P<name>(?<![A-Za-z0-9_.])[A-Za-z_][A-Za-z0-9_]*)|(?P<ok>[<>=!]=)"
                      r"|(?P<bad>[=!]|[^A-Za-z0-9_ .+\-*/<>()!,])|(?P<paren>[()])")
_TOKEN = re.compile(r"[A-Za-z0-9_.]+|[<>=!]=|\*\*|//|<<|>>|\S")
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NUM, _BOOL, _ANY = "number", "condition", "any"  # static kinds; _ANY is a bare column
_SHOWN = 200  # longest cut quoted in full in an error message


class CutSyntaxError(UserError, ValueError):
    """A cut that cannot be parsed or is ill-typed: ``text``, ``position`` (0-based), ``column``."""

    def __init__(self, problem: str, text: str, position: int, hint: str | None = None):
        self.problem, self.text, self.position, self.column = problem, text, position, position + 1
        shown = text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
        start = 0 if len(text) <= _SHOWN else max(0, position - _SHOWN // 2)
        line = re.sub(r"\s", " ", text[start:start + _SHOWN])
        message = f"{problem} at column {self.column} in cut {shown!r}" + (f" ({hint})" if hint else "")
        super().__init__(f"{message}\n    {line}\n    {' ' * (position - start)}^")


class CutEvaluationError(UserError, ValueError):
    """A parsed cut that cannot be evaluated on the given columns."""


class UnknownColumnError(CutEvaluationError, KeyError):
    """A cut names a column that the mapping lacks (``name``; ``available``: those given)."""

    def __init__(self, name: str, text: str, available: list[str]):
        self.name, self.text, self.available = name, text, available
        shown = ", ".join(available) if available else "(none)"
        super().__init__(f"unknown column {name!r} in cut {text!r}; available columns: {shown}")

    __str__ = Exception.__str__  # KeyError would repr() the message


def _parse(text: str) -> tuple[ast.expr, str]:
    """The syntax tree of a cut and the one-line source it was parsed from (same offsets)."""
    if not isinstance(text, str):
        raise TypeError(f"a cut must be a string, got {type(text).__name__}: {text!r}")
    if not text.strip():
        raise CutSyntaxError("empty cut", text, 0)
    if len(text) > MAX_LENGTH:
        raise CutSyntaxError(f"cut is too long ({len(text)} characters, at most {MAX_LENGTH})", text, MAX_LENGTH)
    source = re.sub(r"\s", " ", text)
    opened: list[int] = []
    for match in _LEXICAL.finditer(source):
        kind, token, position = match.lastgroup, match.group(), match.start()
        if kind == "name" and token in _KEYWORDS:
            raise CutSyntaxError(f"Python keyword {token!r} is not supported", text, position)
        if kind == "bad":
            hint = _HINTS.get(source[position:position + 2]) or _HINTS.get(token)
            raise CutSyntaxError(f"unexpected character {token!r}", text, position, hint)
        if token == "(":
            opened.append(position)
            if len(opened) > MAX_NESTING:
                raise CutSyntaxError(f"cut is nested too deeply (more than {MAX_NESTING} parentheses)", text, position)
        elif token == ")":
            if not opened:
                raise CutSyntaxError("unexpected token ')'", text, position)
            opened.pop()
    if opened:
        raise CutSyntaxError("unexpected end of cut", text, len(text), f"expected ')' for column {opened[-1] + 1}")
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as exc:
        position = (exc.offset or 0) - 1
        if not 0 <= position < len(text) or not text[position:].strip():  # Python names no position
            problem = "unexpected end of cut" if exc.msg.startswith("invalid syntax") else exc.msg.split(":")[0]
            raise CutSyntaxError(problem, text, len(text)) from None
        position += len(source[position:]) - len(source[position:].lstrip())
        token = _TOKEN.match(source, position).group()
        raise CutSyntaxError(f"unexpected token {token!r}", text, position, _HINTS.get(token)) from None
    except (RecursionError, MemoryError):  # CPython's parser gives up on very deep input
        raise CutSyntaxError(f"cut is too deeply nested (more than {MAX_DEPTH} levels)", text, 0) from None
    stack = [(tree, 0, 0)]  # depth and nesting of signs/not/calls, without recursion
    while stack:
        node, depth, nesting = stack.pop()
        if isinstance(node, ast.expr):
            depth, nesting = depth + 1, nesting + isinstance(node, (ast.UnaryOp, ast.Call))
            if depth > MAX_DEPTH:
                raise CutSyntaxError(f"cut is too deeply nested (more than {MAX_DEPTH} levels)", text, 0)
            if nesting > MAX_NESTING:
                raise CutSyntaxError(f"cut is nested too deeply (more than {MAX_NESTING} signs, 'not's and "
                                     "calls)", text, node.col_offset)
        stack.extend((child, depth, nesting) for child in ast.iter_child_nodes(node))
    return tree, source


class _Columns:
    """The columns of one evaluation, as flat numpy arrays."""

    def __init__(self, text: str, columns: Any):
        self.text, self.columns, self.cache = text, columns, {}

    def available(self) -> list[str]:
        if isinstance(self.columns, Mapping):
            return sorted(map(str, self.columns.keys()))
        fields = getattr(self.columns, "fields", None)  # e.g. an awkward record array
        return sorted(map(str, fields)) if fields is not None else []

    def get(self, name: str) -> np.ndarray:
        if name in self.cache:  # each column is converted once
            return self.cache[name]
        if not (name in self.columns if isinstance(self.columns, Mapping) else name in self.available()):
            raise UnknownColumnError(name, self.text, self.available())
        try:
            array = np.asarray(self.columns[name])
        except (ValueError, TypeError) as exc:
            raise CutEvaluationError(f"column {name!r} used in cut {self.text!r} is not a flat array of numbers "
                                     f"or booleans (jagged or holding None?): {exc}") from exc
        if array.dtype.kind not in "biuf" or array.ndim > 1:
            raise CutEvaluationError(f"column {name!r} used in cut {self.text!r} must be a flat numeric or boolean "
                                     f"array with one value per event; got dtype {array.dtype}, shape {array.shape}")
        if array.dtype.kind in "iu" and array.dtype.itemsize < 8:
            array = array.astype(np.int64)
        self.cache[name] = array
        return array


Evaluator = Callable[[_Columns], Any]


class _Compiler:
    """Checks each node of a cut against the whitelist (the ``compile_<NodeType>`` methods; any
    other node type is refused) and builds its numpy evaluator."""

    def __init__(self, text: str, source: str):
        self.text, self.source, self.columns = text, source, set()

    def error(self, problem: str, position: int, hint: str | None = None) -> CutSyntaxError:
        return CutSyntaxError(problem, self.text, position, hint)

    def start(self, node: ast.expr, floor: int) -> int:
        """Offset of ``node`` with the parentheses that open right before it (not before ``floor``)."""
        position = node.col_offset
        while position > floor and self.source[position - 1] in " (":
            position -= 1
        return position + len(self.source[position:]) - len(self.source[position:].lstrip())

    def after(self, node: ast.expr, symbol: str) -> int:
        """Offset of the operator ``symbol`` following ``node`` (only ')' and spaces between)."""
        return self.source.find(symbol, node.end_col_offset)

    def operand(self, node: ast.expr, wanted: str, role: str, position: int) -> Evaluator:
        """The evaluator of an operand whose static kind must be ``wanted`` (or a bare column)."""
        kind, evaluator = self.compile(node)
        if kind not in (wanted, _ANY):
            raise self.error(f"{role} needs a {wanted} but got a {kind}", position)
        if kind != _ANY or wanted != _BOOL:
            return evaluator
        text, name, column = self.text, node.id, node.col_offset + 1

        def boolean_column(env: _Columns) -> np.ndarray:
            array = evaluator(env)
            if array.dtype != np.bool_:
                raise CutEvaluationError(f"column {name!r} used as a condition by {role} at column {column} in cut "
                                         f"{text!r} is not boolean (dtype {array.dtype}); compare it explicitly, "
                                         f"e.g. '{name} != 0'")
            return array

        return boolean_column

    def compile(self, node: ast.expr) -> tuple[str, Evaluator]:
        """(static kind, evaluator) of a whitelisted node; :class:`CutSyntaxError` otherwise."""
        method = getattr(self, f"compile_{type(node).__name__}", None)
        if method is not None:
            return method(node)
        if isinstance(node, ast.Tuple):
            if not node.elts:
                raise self.error("unexpected token ')'", node.col_offset + 1)
            raise self.error("unexpected token ','", self.after(node.elts[0], ","), "',' only separates arguments")
        what = "unpacking ('*') is" if isinstance(node, ast.Starred) else f"{type(node).__name__} expressions are"
        raise self.error(f"{what} not supported", node.col_offset)

    def compile_Constant(self, node: ast.Constant) -> tuple[str, Evaluator]:
        source, value = self.source[node.col_offset:node.end_col_offset], node.value
        if isinstance(value, (str, bytes)):
            raise self.error("strings are not supported", node.col_offset)
        if type(value) not in (int, float) or not _NUMBER.fullmatch(source):
            raise self.error(f"unsupported number {source!r}", node.col_offset, "write e.g. 12, 2.5 or 1e3")
        return _NUM, lambda env: value

    def compile_Name(self, node: ast.Name) -> tuple[str, Evaluator]:
        name = node.id
        self.columns.add(name)
        return _ANY, lambda env: env.get(name)

    def compile_Attribute(self, node: ast.Attribute) -> tuple[str, Evaluator]:
        self.compile(node.value)  # a problem further left is named first
        raise self.error("unexpected character '.'", self.after(node.value, "."), _HINTS["."])

    def compile_UnaryOp(self, node: ast.UnaryOp) -> tuple[str, Evaluator]:
        floor = node.col_offset + 1
        if isinstance(node.op, ast.Not):
            operand = self.operand(node.operand, _BOOL, "'not'", self.start(node.operand, floor))
            return _BOOL, lambda env: np.logical_not(operand(env))
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise self.error("unexpected character '~'", node.col_offset, _HINTS["~"])
        symbol, numpy_op = ("-", np.negative) if isinstance(node.op, ast.USub) else ("+", np.positive)
        operand = self.operand(node.operand, _NUM, f"unary {symbol!r}", self.start(node.operand, floor))
        return _NUM, lambda env: numpy_op(operand(env))

    def compile_BinOp(self, node: ast.BinOp) -> tuple[str, Evaluator]:
        if type(node.op) not in _ARITHMETIC:
            symbol = _REFUSED_OPERATORS[type(node.op)]
            raise self.error(f"operator {symbol!r} is not supported", self.after(node.left, symbol), _HINTS.get(symbol))
        symbol, numpy_op = _ARITHMETIC[type(node.op)]
        role, at = f"operator {symbol!r}", self.after(node.left, symbol)
        left = self.operand(node.left, _NUM, role, node.col_offset)
        right = self.operand(node.right, _NUM, role, self.start(node.right, at + 1))
        return _NUM, lambda env: numpy_op(left(env), right(env))

    def compile_Compare(self, node: ast.Compare) -> tuple[str, Evaluator]:
        if any(type(op) not in _COMPARE for op in node.ops):  # 'in', 'is': refused before parsing too
            raise self.error("only the comparisons < <= > >= == != are supported", node.col_offset)
        if len(node.ops) > 1:
            symbol = _COMPARE[type(node.ops[1])][0]
            raise self.error(f"chained comparisons are not supported: {symbol!r}",
                             self.after(node.comparators[0], symbol), "write e.g. '0 < x and x < 1'")
        (symbol, numpy_op), right_node = _COMPARE[type(node.ops[0])], node.comparators[0]
        at = self.after(node.left, symbol)
        if symbol in ("==", "!="):
            (left_kind, left), (right_kind, right) = self.compile(node.left), self.compile(right_node)
            if {left_kind, right_kind} == {_BOOL, _NUM}:
                raise self.error(f"comparison {symbol!r} mixes a condition and a number", at)
        else:  # ordering needs numbers on both sides
            left = self.operand(node.left, _NUM, f"comparison {symbol!r}", node.col_offset)
            right = self.operand(right_node, _NUM, f"comparison {symbol!r}", self.start(right_node, at + len(symbol)))
        return _BOOL, lambda env: numpy_op(left(env), right(env))

    def compile_BoolOp(self, node: ast.BoolOp) -> tuple[str, Evaluator]:
        word = "and" if isinstance(node.op, ast.And) else "or"
        combine, role = (np.logical_and if word == "and" else np.logical_or), f"'{word}'"
        operands = [self.operand(node.values[0], _BOOL, role, node.col_offset)]
        for previous, value in zip(node.values, node.values[1:]):
            floor = self.after(previous, word) + len(word)
            operands.append(self.operand(value, _BOOL, role, self.start(value, floor)))

        def evaluate(env: _Columns) -> np.ndarray:
            result = operands[0](env)
            for operand in operands[1:]:
                result = combine(result, operand(env))
            return result

        return _BOOL, evaluate

    def compile_Call(self, node: ast.Call) -> tuple[str, Evaluator]:
        if not isinstance(node.func, ast.Name):
            self.compile(node.func)  # names an unknown function inside, if there is one
            raise self.error("unexpected token '('", self.after(node.func, "("), "only FUNCTIONS can be called")
        name = node.func.id
        if name not in FUNCTIONS:
            raise self.error(f"unknown function {name!r}", node.col_offset, f"allowed: {', '.join(sorted(FUNCTIONS))}")
        if node.keywords:
            raise self.error("keyword arguments are not supported", node.keywords[0].col_offset)
        if node.args and "," in self.source[node.args[-1].end_col_offset:node.end_col_offset]:
            raise self.error("unexpected token ')'", node.end_col_offset - 1)  # a trailing comma
        arity, numpy_function = FUNCTIONS[name]
        if len(node.args) != arity:
            raise self.error(f"function {name!r} takes {arity} argument{'s' * (arity > 1)} but got "
                             f"{len(node.args)}", node.col_offset)
        floor, arguments = self.after(node.func, "(") + 1, []
        for argument in node.args:
            arguments.append(self.operand(argument, _NUM, f"function {name!r}", self.start(argument, floor)))
            floor = argument.end_col_offset
        return _NUM, lambda env: numpy_function(*(argument(env) for argument in arguments))


@dataclass(frozen=True)
class CutExpression:
    """A parsed, checked cut; build it with :func:`parse_cut`.

    ``text`` is the source, ``columns`` the names it reads, ``is_condition`` True if it is
    statically boolean, False if numeric, None if a bare column.  Immutable and picklable: it
    pickles as its text and is checked again when unpickled (parse on the client, ship to
    Dask/HTCondor workers).  Two cuts are equal when their texts are.
    """

    text: str
    columns: frozenset[str] = field(init=False, compare=False, repr=False)
    is_condition: bool | None = field(init=False, compare=False, repr=False)
    _evaluator: Evaluator = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        tree, source = _parse(self.text)
        compiler = _Compiler(self.text, source)
        kind, evaluator = compiler.compile(tree)
        object.__setattr__(self, "columns", frozenset(compiler.columns))
        object.__setattr__(self, "is_condition", None if kind == _ANY else kind == _BOOL)
        object.__setattr__(self, "_evaluator", evaluator)

    def __reduce__(self):
        return (CutExpression, (self.text,))

    def values(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The expression's values (numbers or booleans) on ``columns``: a mapping of names (or an
        awkward record array) to flat arrays.  :class:`UnknownColumnError` for a missing column,
        :class:`CutEvaluationError` for an unusable one; ``x / 0``, ``sqrt(-1)`` give inf/nan."""
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return np.asarray(self._evaluator(_Columns(self.text, columns)))
        except CutEvaluationError:
            raise
        except (OverflowError, ValueError, TypeError) as exc:
            raise CutEvaluationError(f"cannot evaluate cut {self.text!r}: {exc}") from exc

    def evaluate(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The cut on a chunk of events, a numpy boolean mask (0-d for a cut without columns).

        A numeric expression (``"met + 3"``) or a non-boolean bare column raises
        :class:`CutEvaluationError`.  Comparisons with NaN are False."""
        if self.is_condition is False:
            raise CutEvaluationError(f"cut {self.text!r} is a numeric expression, not a condition; "
                                     f"compare it with something, e.g. '{self.text} > 0'")
        result = self.values(columns)
        if result.dtype != np.bool_:
            raise CutEvaluationError(f"cut {self.text!r} does not evaluate to booleans (dtype {result.dtype}); "
                                     f"compare it with something, e.g. '{self.text} != 0'")
        return result

    def __str__(self) -> str:
        return self.text


def parse_cut(text: str) -> CutExpression:
    """Parse and check a cut string (no ``eval``) into a :class:`CutExpression`.

    :class:`CutSyntaxError` (a ``ValueError``) quotes the cut and points at the problem, e.g.
    ``unexpected token ')' at column 12 in cut 'met > (200))'``; ``TypeError`` for a non-string.
    """
    return CutExpression(text)
