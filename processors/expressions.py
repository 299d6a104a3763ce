"""Safe, vectorised selection-cut expressions for analysis configs.

Analysis configs write selection cuts as small strings over named event columns::

    met > 200
    mt_lep1 > 10 and mt_lep2 > 10
    abs(lep1_eta) < 2.47
    not (mll > 76 and mll < 106)
    met / jet1_pt < 3.5

Such strings come from user files, so they are **never** handed to Python's
``eval``/``exec``/``compile`` or to the ``ast`` module.  Instead a tiny tokenizer and
a recursive-descent parser turn the text, once, into a small tree of frozen
dataclasses (:class:`Number`, :class:`Column`, :class:`Unary`, :class:`Binary`,
:class:`Compare`, :class:`Not`, :class:`Logical`, :class:`Call`), which is then
evaluated with numpy on whole columns, i.e. on a chunk of events at once.

Grammar (lowest precedence first; all binary operators are left-associative)::

    expr        := and_expr ( "or" and_expr )*
    and_expr    := not_expr ( "and" not_expr )*
    not_expr    := "not" not_expr | comparison
    comparison  := arith [ ("<" | "<=" | ">" | ">=" | "==" | "!=") arith ]
    arith       := term ( ("+" | "-") term )*
    term        := unary ( ("*" | "/") unary )*
    unary       := ("-" | "+") unary | primary
    primary     := NUMBER | NAME | FUNC "(" expr ( "," expr )* ")" | "(" expr ")"

* ``NUMBER``: ``12``, ``2.47``, ``.5``, ``1e3``, ``2.5E-2``.
* ``NAME``: a column name, ``[A-Za-z_][A-Za-z0-9_]*`` (not a Python keyword).
* ``FUNC``: one of :data:`FUNCTIONS` -- ``abs``, ``sqrt``, ``cos``, ``sin`` (one
  argument) and ``min``, ``max`` (two arguments, element-wise).
* Chained comparisons (``0 < x < 1``) are rejected; write ``0 < x and x < 1``.
* Anything else -- strings, attribute access ``a.b``, indexing ``a[0]``, ``lambda``,
  ``**``, ``&``, keywords such as ``if``/``in``/``is`` -- is a :class:`CutSyntaxError`.

Types are checked when parsing wherever they are known: arithmetic and ordering
comparisons need numbers, ``and``/``or``/``not`` need conditions (comparisons,
boolean operations or columns).  A bare column may be used as a condition
(``not a > 1 or passed_trigger``); it must then hold a boolean array, checked when
evaluating.

Evaluation semantics (numpy):

* Division is true division; ``x / 0`` gives ``inf``/``nan`` without a warning.
* **Any comparison with NaN is False** (numpy/IEEE semantics), so an event whose
  column is NaN fails ``x > 1`` *and* ``x <= 1`` but passes ``not x > 1``.
  ``sqrt`` of a negative number is NaN and so fails every comparison too.
* Integer columns narrower than 64 bits (and unsigned ones narrower than 64 bits)
  are widened to ``int64`` first, so ``n_lep - 3 < 0`` cannot wrap around on a
  ``uint8`` column.  Floating columns keep their precision (``float32`` NanoAOD
  columns are compared in ``float32``, as numpy does).
* Columns must be flat (one value per event, numpy or awkward); jagged or
  option-type (``None``-holding) awkward arrays are rejected with an error that
  names the column.

Public API: :func:`parse_cut`, :class:`CutExpression`, :class:`CutSyntaxError`,
:class:`CutEvaluationError`, :class:`UnknownColumnError`, :data:`FUNCTIONS`.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np

from analysis.core.errors import UserError

__all__ = [
    "FUNCTIONS",
    "CutEvaluationError",
    "CutExpression",
    "CutSyntaxError",
    "UnknownColumnError",
    "parse_cut",
]

#: Whitelisted functions: name -> (number of arguments, numpy implementation).
FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "abs": (1, np.abs),
    "sqrt": (1, np.sqrt),
    "cos": (1, np.cos),
    "sin": (1, np.sin),
    "min": (2, np.minimum),
    "max": (2, np.maximum),
}

#: Deepest expression tree accepted (guards the recursive evaluator).  ``and``/``or``
#: chains are flat, so only deeply nested arithmetic or parentheses come near it.
MAX_DEPTH = 64
#: Deepest nesting of parentheses, unary signs, ``not`` and calls (guards the parser).
MAX_NESTING = 32

_COMPARISONS = ("<=", ">=", "==", "!=", "<", ">")
_LOGICAL_WORDS = ("and", "or", "not")
_RESERVED = frozenset(keyword.kwlist) - set(_LOGICAL_WORDS)

# Hints for operators people write from other languages.
_OPERATOR_HINTS = {
    "&": "use 'and'",
    "&&": "use 'and'",
    "|": "use 'or'",
    "||": "use 'or'",
    "!": "use 'not'",
    "~": "use 'not'",
    "=": "use '==' to compare",
    "**": "powers are not supported; write x * x",
    "^": "powers are not supported; write x * x",
    "%": "the modulo operator is not supported",
    ".": "attribute access is not supported; name the column directly",
    "[": "indexing is not supported; name a flat column",
    "'": "strings are not supported",
    '"': "strings are not supported",
}


# --------------------------------------------------------------------------- errors


class CutSyntaxError(UserError, ValueError):
    """A cut string that cannot be parsed (or is ill-typed where that is known).

    Attributes ``text`` (the cut), ``position`` (0-based offset of the offending
    token) and ``column`` (1-based) locate the problem; the message quotes the cut
    and draws a caret under the offending position.
    """

    def __init__(self, problem: str, text: str, position: int, hint: str | None = None):
        self.problem = problem
        self.text = text
        self.position = position
        self.column = position + 1
        message = f"{problem} at column {self.column} in cut {text!r}"
        if hint:
            message += f" ({hint})"
        message += f"\n    {text}\n    {' ' * position}^"
        super().__init__(message)


class CutEvaluationError(UserError, ValueError):
    """A parsed cut that cannot be evaluated on the given columns."""


class UnknownColumnError(CutEvaluationError, KeyError):
    """A cut names a column that the column mapping does not provide.

    It is both a ``ValueError`` and a ``KeyError``; ``name`` is the missing column
    and ``available`` the names that were provided.
    """

    def __init__(self, name: str, text: str, available: list[str]):
        self.name = name
        self.text = text
        self.available = available
        shown = ", ".join(available) if available else "(none)"
        super().__init__(
            f"unknown column {name!r} in cut {text!r}; available columns: {shown}"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


# ------------------------------------------------------------------------ tokenizer


@dataclass(frozen=True)
class Token:
    """One lexical token: ``kind`` is 'number', 'name', 'op' or 'end'."""

    kind: str
    text: str
    position: int


_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|[<>+\-*/(),])
    """,
    re.VERBOSE,
)


def _bad_character(text: str, position: int) -> CutSyntaxError:
    two = text[position : position + 2]
    one = text[position]
    hint = _OPERATOR_HINTS.get(two) or _OPERATOR_HINTS.get(one)
    return CutSyntaxError(f"unexpected character {one!r}", text, position, hint)


def tokenize(text: str) -> list[Token]:
    """Split a cut string into tokens, ending with an 'end' token.

    Raises :class:`CutSyntaxError` at the first character that starts no token.
    """
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None:
            raise _bad_character(text, position)
        kind = match.lastgroup
        if kind == "name" and match.group() in _RESERVED:
            raise CutSyntaxError(
                f"Python keyword {match.group()!r} is not supported", text, position
            )
        if kind != "space":
            tokens.append(Token(kind, match.group(), position))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# ---------------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Number:
    """A numeric literal."""

    value: Union[int, float]
    position: int


@dataclass(frozen=True)
class Column:
    """A reference to an event column by name."""

    name: str
    position: int


@dataclass(frozen=True)
class Unary:
    """Unary ``-`` or ``+`` applied to a number."""

    op: str
    operand: "Node"
    position: int


@dataclass(frozen=True)
class Binary:
    """Arithmetic ``+ - * /``."""

    op: str
    left: "Node"
    right: "Node"
    position: int


@dataclass(frozen=True)
class Compare:
    """A single (non-chained) comparison ``< <= > >= == !=``."""

    op: str
    left: "Node"
    right: "Node"
    position: int


@dataclass(frozen=True)
class Not:
    """Boolean negation."""

    operand: "Node"
    position: int


@dataclass(frozen=True)
class Logical:
    """Boolean ``and`` / ``or`` over two or more operands (a flat chain)."""

    op: str
    operands: tuple["Node", ...]
    position: int


@dataclass(frozen=True)
class Call:
    """A call of a whitelisted function (see :data:`FUNCTIONS`)."""

    name: str
    args: tuple["Node", ...]
    position: int


Node = Union[Number, Column, Unary, Binary, Compare, Not, Logical, Call]

# Static result kinds: 'number', 'bool', or 'any' (a bare column: decided by its data).
_NUMBER, _BOOL, _ANY = "number", "bool", "any"


def _kind(node: Node) -> str:
    if isinstance(node, (Compare, Not, Logical)):
        return _BOOL
    if isinstance(node, Column):
        return _ANY
    return _NUMBER


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, (Unary, Not)):
        return (node.operand,)
    if isinstance(node, (Binary, Compare)):
        return (node.left, node.right)
    if isinstance(node, Logical):
        return node.operands
    if isinstance(node, Call):
        return node.args
    return ()


def _depth(root: Node) -> int:
    """Depth of the tree, computed without recursion."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in _children(node))
    return deepest


# --------------------------------------------------------------------------- parser


class _Parser:
    """Recursive-descent parser over the token list of one cut string."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.nesting = 0

    # -- helpers
    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def at(self, kind: str, *texts: str) -> bool:
        token = self.current
        return token.kind == kind and (not texts or token.text in texts)

    def error(self, problem: str, token: Token | None = None, hint: str | None = None):
        token = token or self.current
        return CutSyntaxError(problem, self.text, token.position, hint)

    def unexpected(self, token: Token | None = None, hint: str | None = None):
        token = token or self.current
        if token.kind == "end":
            return self.error("unexpected end of cut", token, hint)
        return self.error(f"unexpected token {token.text!r}", token, hint)

    def expect(self, text: str) -> Token:
        if not self.at("op", text):
            raise self.unexpected(hint=f"expected {text!r}")
        return self.advance()

    def nested(self) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.error(f"cut is nested too deeply (more than {MAX_NESTING} levels)")

    def require(self, node: Node, wanted: str, token: Token, role: str) -> Node:
        """Reject an operand whose static kind is known to be wrong."""
        kind = _kind(node)
        if kind == _ANY or kind == wanted:
            return node
        what = "a number" if wanted == _NUMBER else "a condition"
        found = "a condition" if kind == _BOOL else "a number"
        raise self.error(f"{role} needs {what} but got {found}", token)

    # -- grammar
    def parse(self) -> Node:
        node = self.expr()
        if not self.at("end"):
            raise self.unexpected()
        if _depth(node) > MAX_DEPTH:
            raise CutSyntaxError(
                f"cut is too deeply nested (more than {MAX_DEPTH} levels)", self.text, 0
            )
        return node

    def expr(self) -> Node:
        return self.logical("or", self.and_expr)

    def and_expr(self) -> Node:
        return self.logical("and", self.not_expr)

    def logical(self, word: str, operand: Callable[[], Node]) -> Node:
        start = self.current
        first = operand()
        if not self.at("name", word):
            return first
        operands = [self.require(first, _BOOL, start, f"'{word}'")]
        position = self.current.position
        while self.at("name", word):
            self.advance()
            operand_start = self.current
            operands.append(self.require(operand(), _BOOL, operand_start, f"'{word}'"))
        return Logical(word, tuple(operands), position)

    def not_expr(self) -> Node:
        if self.at("name", "not"):
            token = self.advance()
            self.nested()
            operand_start = self.current
            operand = self.require(self.not_expr(), _BOOL, operand_start, "'not'")
            self.nesting -= 1
            return Not(operand, token.position)
        return self.comparison()

    def comparison(self) -> Node:
        left_start = self.current
        left = self.arith()
        if not self.at("op", *_COMPARISONS):
            return left
        token = self.advance()
        right_start = self.current
        right = self.arith()
        if self.at("op", *_COMPARISONS):
            raise self.error(
                f"chained comparisons are not supported: {self.current.text!r}",
                hint="write e.g. '0 < x and x < 1'",
            )
        if token.text not in ("==", "!="):  # ordering needs numbers on both sides
            self.require(left, _NUMBER, left_start, f"comparison {token.text!r}")
            self.require(right, _NUMBER, right_start, f"comparison {token.text!r}")
        elif {_kind(left), _kind(right)} == {_BOOL, _NUMBER}:
            raise self.error(f"comparison {token.text!r} mixes a condition and a number", token)
        return Compare(token.text, left, right, token.position)

    def arith(self) -> Node:
        return self.binary(("+", "-"), self.term)

    def term(self) -> Node:
        return self.binary(("*", "/"), self.unary)

    def binary(self, ops: tuple[str, ...], operand: Callable[[], Node]) -> Node:
        start = self.current
        left = operand()
        while self.at("op", *ops):
            token = self.advance()
            self.require(left, _NUMBER, start, f"operator {token.text!r}")
            right_start = self.current
            right = self.require(operand(), _NUMBER, right_start, f"operator {token.text!r}")
            left = Binary(token.text, left, right, token.position)
        return left

    def unary(self) -> Node:
        if self.at("op", "-", "+"):
            token = self.advance()
            self.nested()
            operand_start = self.current
            operand = self.require(self.unary(), _NUMBER, operand_start, f"unary {token.text!r}")
            self.nesting -= 1
            return Unary(token.text, operand, token.position)
        return self.primary()

    def primary(self) -> Node:
        token = self.current
        if token.kind == "number":
            self.advance()
            return Number(_number_value(token.text), token.position)
        if token.kind == "name":
            return self.name_or_call()
        if self.at("op", "("):
            self.advance()
            self.nested()
            node = self.expr()
            self.nesting -= 1
            self.expect(")")
            return node
        raise self.unexpected()

    def name_or_call(self) -> Node:
        token = self.advance()
        name = token.text
        if name in _LOGICAL_WORDS:
            raise self.unexpected(token)
        if not self.at("op", "("):
            return Column(name, token.position)
        if name not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            raise self.error(f"unknown function {name!r}", token, f"allowed: {allowed}")
        return self.call(token)

    def call(self, token: Token) -> Call:
        arity = FUNCTIONS[token.text][0]
        self.expect("(")
        self.nested()
        args = [self.call_argument(token)]
        while self.at("op", ","):
            self.advance()
            args.append(self.call_argument(token))
        self.nesting -= 1
        self.expect(")")
        if len(args) != arity:
            raise self.error(
                f"function {token.text!r} takes {arity} argument{'s' * (arity > 1)}"
                f" but got {len(args)}",
                token,
            )
        return Call(token.text, tuple(args), token.position)

    def call_argument(self, function: Token) -> Node:
        start = self.current
        return self.require(self.expr(), _NUMBER, start, f"function {function.text!r}")


def _number_value(text: str) -> Union[int, float]:
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


# ------------------------------------------------------------------------ evaluator


def _column_array(name: str, value: Any, text: str) -> np.ndarray:
    """Turn one provided column into a flat numeric/boolean numpy array."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise CutEvaluationError(
            f"column {name!r} used in cut {text!r} is not a flat array of numbers or "
            f"booleans (jagged or holding None?): {exc}"
        ) from exc
    if array.dtype.kind not in "biuf" or array.ndim > 1:
        raise CutEvaluationError(
            f"column {name!r} used in cut {text!r} must be a flat numeric or boolean "
            f"array with one value per event; got dtype {array.dtype}, shape {array.shape}"
        )
    if array.dtype.kind in "iu" and array.dtype.itemsize < 8:
        array = array.astype(np.int64)
    return array


def _available(columns: Any) -> list[str]:
    if isinstance(columns, Mapping):
        return sorted(map(str, columns.keys()))
    fields = getattr(columns, "fields", None)  # e.g. an awkward record array
    return sorted(map(str, fields)) if fields is not None else []


def _has_column(columns: Any, name: str) -> bool:
    if isinstance(columns, Mapping):
        return name in columns
    return name in _available(columns)


_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide}
_COMPARE = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


class _Evaluator:
    """Evaluates one tree on one set of columns (each column converted once)."""

    def __init__(self, expression: "CutExpression", columns: Any):
        self.text = expression.text
        self.columns = columns
        self.cache: dict[str, np.ndarray] = {}

    def column(self, node: Column) -> np.ndarray:
        if node.name not in self.cache:
            if not _has_column(self.columns, node.name):
                raise UnknownColumnError(node.name, self.text, _available(self.columns))
            raw = self.columns[node.name]
            self.cache[node.name] = _column_array(node.name, raw, self.text)
        return self.cache[node.name]

    def condition(self, node: Node, role: str) -> np.ndarray:
        value = np.asarray(self.eval(node))
        if value.dtype != np.bool_:
            where = f"column {node.name!r}" if isinstance(node, Column) else "expression"
            raise CutEvaluationError(
                f"{where} used as a condition by {role} at column {node.position + 1} in "
                f"cut {self.text!r} is not boolean (dtype {value.dtype}); compare it "
                f"explicitly, e.g. '{getattr(node, 'name', 'x')} != 0'"
            )
        return value

    def eval(self, node: Node) -> Any:
        if isinstance(node, Number):
            return node.value
        if isinstance(node, Column):
            return self.column(node)
        if isinstance(node, Unary):
            operand = self.eval(node.operand)
            return np.negative(operand) if node.op == "-" else np.positive(operand)
        if isinstance(node, Binary):
            return _ARITHMETIC[node.op](self.eval(node.left), self.eval(node.right))
        if isinstance(node, Compare):
            return _COMPARE[node.op](self.eval(node.left), self.eval(node.right))
        if isinstance(node, Not):
            return np.logical_not(self.condition(node.operand, "'not'"))
        if isinstance(node, Logical):
            combine = np.logical_and if node.op == "and" else np.logical_or
            result = self.condition(node.operands[0], repr(node.op))
            for operand in node.operands[1:]:
                result = combine(result, self.condition(operand, repr(node.op)))
            return result
        if isinstance(node, Call):
            return FUNCTIONS[node.name][1](*(self.eval(arg) for arg in node.args))
        raise TypeError(f"not a cut expression node: {node!r}")  # pragma: no cover


# ----------------------------------------------------------------------- public API


@dataclass(frozen=True)
class CutExpression:
    """A parsed cut: keeps the source ``text`` and its syntax ``tree``.

    Build it with :func:`parse_cut`.  It is immutable and picklable, so it can be
    parsed once on the client and shipped to Dask/HTCondor workers.
    """

    text: str
    tree: Node

    @property
    def columns(self) -> frozenset[str]:
        """The set of column names the cut reads."""
        names, stack = set(), [self.tree]
        while stack:
            node = stack.pop()
            if isinstance(node, Column):
                names.add(node.name)
            stack.extend(_children(node))
        return frozenset(names)

    @property
    def is_condition(self) -> bool | None:
        """True if the cut is statically boolean, False if numeric, None if a bare column."""
        kind = _kind(self.tree)
        return None if kind == _ANY else kind == _BOOL

    def values(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Evaluate the expression as it is (numbers or booleans), vectorised.

        ``columns`` maps column names to flat numpy or awkward arrays of equal length
        (an awkward record array with ``fields`` works too).  Raises
        :class:`UnknownColumnError` for a missing column and
        :class:`CutEvaluationError` for an unusable one.  Division by zero and
        invalid math (``sqrt(-1)``) give ``inf``/``nan`` silently.
        """
        evaluator = _Evaluator(self, columns)
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return np.asarray(evaluator.eval(self.tree))
        except (OverflowError, ValueError, TypeError) as exc:
            if isinstance(exc, CutEvaluationError):
                raise
            raise CutEvaluationError(f"cannot evaluate cut {self.text!r}: {exc}") from exc

    def evaluate(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Evaluate the cut on a chunk of events and return a numpy boolean mask.

        The top-level expression must be a condition: ``"met + 3"`` raises
        :class:`CutEvaluationError`.  A bare column (``"passed_trigger"``) is accepted
        if it holds booleans.  Comparisons involving NaN are False (numpy semantics).
        A cut without columns (``"1 < 2"``) gives a 0-d boolean array.
        """
        if self.is_condition is False:
            raise CutEvaluationError(
                f"cut {self.text!r} is a numeric expression, not a condition; "
                f"compare it with something, e.g. '{self.text} > 0'"
            )
        result = self.values(columns)
        if result.dtype != np.bool_:
            raise CutEvaluationError(
                f"cut {self.text!r} does not evaluate to booleans (dtype {result.dtype}); "
                f"compare it with something, e.g. '{self.text} != 0'"
            )
        return result

    def __str__(self) -> str:
        return self.text


def parse_cut(text: str) -> CutExpression:
    """Parse a cut string into a :class:`CutExpression` (no Python ``eval`` involved).

    Raises :class:`CutSyntaxError` (a ``ValueError``) whose message quotes the cut
    and points at the offending token, e.g.
    ``unexpected token ')' at column 12 in cut 'met > (200))'``.
    """
    if not isinstance(text, str):
        raise TypeError(f"a cut must be a string, got {type(text).__name__}: {text!r}")
    if not text.strip():
        raise CutSyntaxError("empty cut", text, 0)
    return CutExpression(text, _Parser(text).parse())
