"""Tests for processors.expressions: safe, vectorised selection-cut strings."""

from __future__ import annotations

import pickle

import awkward as ak
import numpy as np
import pytest

from processors.expressions import (
    FUNCTIONS,
    CutEvaluationError,
    CutExpression,
    CutSyntaxError,
    UnknownColumnError,
    parse_cut,
)

NAN = np.nan


@pytest.fixture
def cols():
    return {
        "a": np.array([0.0, 1.0, 2.0, 3.0]),
        "b": np.array([True, False, True, False]),
        "met": np.array([150.0, 250.0, NAN, 400.0]),
        "jet1_pt": np.array([100.0, 50.0, 80.0, 200.0]),
        "n_bjet": np.array([0, 1, 2, 0], dtype=np.int32),
        "eta": np.array([-3.0, -1.0, 2.0, 2.5]),
    }


def ev(text, cols):
    return parse_cut(text).evaluate(cols)


# --------------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1 + 2 * 3 == 7", True),
        ("(1 + 2) * 3 == 9", True),
        ("10 - 4 - 3 == 3", True),  # left-associative
        ("24 / 4 / 2 == 3", True),
        ("-2 * 3 == -6", True),
        ("- -2 == 2", True),
        ("2 * -3 == -6", True),
        ("not 1 > 2", True),  # 'not' binds looser than comparison
        ("1 > 2 and 1 > 0 or 2 > 1", True),  # (F and T) or T
        ("2 > 1 or 1 > 2 and 1 > 2", True),  # T or (F and F): 'and' binds tighter
        ("not 2 > 1 or 2 > 1", True),  # (not T) or T
        ("not (2 > 1 or 2 > 1)", False),
        ("1e3 == 1000", True),
        (".5 == 0.5", True),
        ("2.5E-2 == 0.025", True),
        ("1.5e+1 == 15", True),
    ],
)
def test_precedence_and_literals_on_constants(text, expected):
    assert bool(parse_cut(text).evaluate({})) is expected


def test_not_binds_looser_than_comparison_and_tighter_than_or(cols):
    # (not (a > 1)) or b
    expected = np.logical_not(cols["a"] > 1) | cols["b"]
    np.testing.assert_array_equal(ev("not a > 1 or b", cols), expected)
    np.testing.assert_array_equal(ev("not a > 1 or b", cols), [True, True, True, False])


def test_and_binds_tighter_than_or(cols):
    # a == 0 or (a == 3 and b)  -> [T, F, F, F]
    np.testing.assert_array_equal(ev("a == 0 or a == 3 and b", cols), [True, False, False, False])
    # (a == 0 or a == 3) and b -> [T, F, F, F]; differs at index 3 from 'a == 0 or a == 3'
    np.testing.assert_array_equal(ev("(a == 0 or a == 3) and not b", cols), [False, False, False, True])


def test_unary_minus_binds_tighter_than_multiplication(cols):
    np.testing.assert_array_equal(ev("-a * 2 == -(a * 2)", cols), [True] * 4)
    np.testing.assert_array_equal(ev("-a + 1 > 0", cols), [True, False, False, False])


# ---------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a < 2", [True, True, False, False]),
        ("a <= 2", [True, True, True, False]),
        ("a > 2", [False, False, False, True]),
        ("a >= 2", [False, False, True, True]),
        ("a == 2", [False, False, True, False]),
        ("a != 2", [True, True, False, True]),
        ("a + 1 == 2", [False, True, False, False]),
        ("a - 1 == 0", [False, True, False, False]),
        ("a * 2 == 4", [False, False, True, False]),
        ("a / 2 == 1.5", [False, False, False, True]),
        ("a > 0 and b", [False, False, True, False]),
        ("a > 0 or b", [True, True, True, True]),
        ("not b", [False, True, False, True]),
        ("b", [True, False, True, False]),
        ("b == (a > 1)", [False, True, True, False]),
        ("abs(eta) < 2.47", [False, True, True, False]),
        ("sqrt(a) == 1", [False, True, False, False]),
        ("min(a, 2) == 2", [False, False, True, True]),
        ("max(a, 2) == 2", [True, True, True, False]),
        ("cos(a * 0) == 1", [True, True, True, True]),
        ("sin(a * 0) == 0", [True, True, True, True]),
        ("n_bjet == 0", [True, False, False, True]),
        ("met / jet1_pt < 3.5", [True, False, False, True]),  # 1.5, 5, NaN, 2
        ("not (met > 200 and met < 300)", [True, False, True, True]),
    ],
)
def test_each_operator_elementwise(cols, text, expected):
    result = ev(text, cols)
    assert isinstance(result, np.ndarray) and result.dtype == np.bool_
    np.testing.assert_array_equal(result, expected)


def test_config_style_cuts(cols):
    cols = dict(cols, mt_lep1=np.array([5.0, 20.0, 30.0, 11.0]), mt_lep2=np.array([50, 5, 30, 12]))
    np.testing.assert_array_equal(ev("mt_lep1 > 10 and mt_lep2 > 10", cols), [False, False, True, True])
    cols["min_dphi_jet_met"] = np.array([0.1, 0.5, 0.4, 3.0])
    np.testing.assert_array_equal(ev("min_dphi_jet_met > 0.4", cols), [False, True, False, True])


def test_trig_functions_match_numpy(cols):
    x = np.linspace(-4, 4, 101)
    np.testing.assert_array_equal(
        parse_cut("cos(x) > sin(x)").evaluate({"x": x}), np.cos(x) > np.sin(x)
    )


def test_nan_comparisons_are_false(cols):
    # met[2] is NaN: it fails both a cut and its complement, but passes its negation.
    assert not ev("met > 200", cols)[2]
    assert not ev("met <= 200", cols)[2]
    assert not ev("met == met", cols)[2]
    assert ev("met != met", cols)[2]  # IEEE: NaN != NaN
    assert ev("not met > 200", cols)[2]


def test_division_by_zero_and_sqrt_of_negative_do_not_warn(cols):
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(ev("1 / a > 0.5", cols), [True, True, False, False])
        np.testing.assert_array_equal(ev("sqrt(eta) > 0", cols), [False, False, True, True])


def test_small_unsigned_integer_columns_do_not_wrap_around():
    n = np.array([0, 1, 5], dtype=np.uint8)
    np.testing.assert_array_equal(parse_cut("n - 3 < 0").evaluate({"n": n}), [True, True, False])


def test_awkward_flat_columns_and_record_arrays():
    events = ak.Array({"met": [100.0, 300.0], "n_bjet": [0, 2]})
    np.testing.assert_array_equal(parse_cut("met > 200").evaluate(events), [False, True])
    np.testing.assert_array_equal(
        parse_cut("met > 200 or n_bjet == 0").evaluate({"met": events.met, "n_bjet": events.n_bjet}),
        [True, True],
    )


def test_vectorised_on_large_arrays():
    rng = np.random.default_rng(7)
    n = 100_000
    cols = {
        "met": rng.exponential(150.0, n),
        "jet1_pt": rng.exponential(100.0, n) + 20.0,
        "lep1_eta": rng.normal(0.0, 2.0, n),
        "mll": rng.uniform(0.0, 200.0, n),
        "n_bjet": rng.integers(0, 3, n),
    }
    text = "met > 200 and abs(lep1_eta) < 2.47 and not (mll > 76 and mll < 106) and (n_bjet == 0 or met / jet1_pt < 3.5)"
    expected = (
        (cols["met"] > 200)
        & (np.abs(cols["lep1_eta"]) < 2.47)
        & ~((cols["mll"] > 76) & (cols["mll"] < 106))
        & ((cols["n_bjet"] == 0) | (cols["met"] / cols["jet1_pt"] < 3.5))
    )
    result = parse_cut(text).evaluate(cols)
    assert result.shape == (n,) and result.dtype == np.bool_
    np.testing.assert_array_equal(result, expected)
    assert 0 < result.sum() < n


# ------------------------------------------------------------------ public object


def test_columns_text_and_str():
    cut = parse_cut("met > 200 and abs(lep1_eta) < 2.47 or min(met, jet1_pt) > 3")
    assert cut.columns == {"met", "lep1_eta", "jet1_pt"}
    assert cut.text == "met > 200 and abs(lep1_eta) < 2.47 or min(met, jet1_pt) > 3"
    assert str(cut) == cut.text
    assert isinstance(cut, CutExpression)
    assert parse_cut("1 < 2").columns == frozenset()


def test_function_names_are_not_columns():
    assert parse_cut("abs(x) < 1").columns == {"x"}
    assert set(FUNCTIONS) == {"abs", "sqrt", "min", "max", "cos", "sin"}


def test_parsed_cut_pickles_for_workers():
    cut = parse_cut("met > 200 and not b")
    clone = pickle.loads(pickle.dumps(cut))
    assert clone == cut
    cols = {"met": np.array([300.0, 300.0]), "b": np.array([True, False])}
    np.testing.assert_array_equal(clone.evaluate(cols), [False, True])


def test_values_returns_numbers_for_numeric_expressions(cols):
    np.testing.assert_allclose(parse_cut("met / jet1_pt").values(cols), cols["met"] / cols["jet1_pt"])
    assert parse_cut("met + 3").is_condition is False
    assert parse_cut("met > 3").is_condition is True
    assert parse_cut("b").is_condition is None


# ------------------------------------------------------------------------- errors


def test_unknown_column_is_named_with_available_ones(cols):
    with pytest.raises(UnknownColumnError) as info:
        ev("met > 200 and mett < 3", cols)
    message = str(info.value)
    assert "'mett'" in message and "met > 200 and mett < 3" in message
    assert "available columns: a, b, eta, jet1_pt, met, n_bjet" in message
    assert info.value.name == "mett"
    assert isinstance(info.value, ValueError) and isinstance(info.value, KeyError)


def test_syntax_error_points_at_the_offending_token():
    with pytest.raises(CutSyntaxError) as info:
        parse_cut("met > (200))")
    error = info.value
    assert str(error).startswith("unexpected token ')' at column 12 in cut 'met > (200))'")
    assert (error.position, error.column, error.text) == (11, 12, "met > (200))")
    assert str(error).splitlines()[-1] == "    " + " " * 11 + "^"
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("met >", "unexpected end of cut at column 6"),
        ("met > 200 and", "unexpected end of cut at column 14"),
        ("(met > 200", "unexpected end of cut at column 11"),
        ("met 200", "unexpected token '200' at column 5"),
        ("> 200", "unexpected token '>' at column 1"),
        ("met >> 200", "operator '>>' is not supported at column 5"),
        ("2abc > 1", "unexpected token '2abc' at column 1"),
        ("", "empty cut"),
        ("   ", "empty cut"),
        ("a = 1", "unexpected character '=' at column 3"),
        ("a && b", "unexpected character '&' at column 3 in cut 'a && b' (use 'and')"),
        ("a | b", "use 'or'"),
        ("a ** 2 > 1", "operator '**' is not supported at column 3 in cut 'a ** 2 > 1' (powers are not"),
        ("a // 2 > 1", "operator '//' is not supported at column 3"),
        ("a % 2 == 0", "unexpected character '%'"),
        ("min(a) > 1", "function 'min' takes 2 arguments but got 1"),
        ("abs(a, b) > 1", "function 'abs' takes 1 argument but got 2"),
        ("abs() > 1", "function 'abs' takes 1 argument but got 0 at column 1"),
        ("abs(a,) > 1", "unexpected token ')' at column 7"),  # no trailing comma
        ("a > 1, b > 2", "unexpected token ',' at column 6"),  # no tuples
        ("()", "unexpected token ')' at column 2"),
        ("0x10 > 1", "unsupported number '0x10' at column 1"),
        ("1_000 > 1", "unsupported number '1_000'"),
        ("1j > 0", "unsupported number '1j'"),
        ("... > 0", "unsupported number '...'"),
    ],
)
def test_syntax_errors_have_position(text, fragment):
    with pytest.raises(CutSyntaxError) as info:
        parse_cut(text)
    assert fragment in str(info.value)
    assert f"in cut {text!r}" in str(info.value)


def test_chained_comparison_is_rejected_with_a_hint():
    with pytest.raises(CutSyntaxError, match=r"chained comparisons are not supported: '<' at column 7") as info:
        parse_cut("0 < x < 1")
    assert "0 < x and x < 1" in str(info.value)


def test_unknown_function_is_named():
    with pytest.raises(CutSyntaxError) as info:
        parse_cut("exp(met) > 3")
    assert "unknown function 'exp' at column 1" in str(info.value)
    assert "allowed: abs, cos, max, min, sin, sqrt" in str(info.value)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("__import__('os')", "unexpected character \"'\" at column 12"),
        ("__import__(os)", "unknown function '__import__'"),
        ("a.b > 1", "unexpected character '.' at column 2"),
        ("met.__class__", "unexpected character '.'"),
        ("a[0] > 1", "unexpected character '[' at column 2"),
        ("'met' > 1", "unexpected character \"'\" at column 1"),
        ('"met" > 1', "unexpected character '\"' at column 1"),
        ("lambda x: x", "Python keyword 'lambda' is not supported at column 1"),
        ("x if y else z", "Python keyword 'if' is not supported"),
        ("a in b", "Python keyword 'in' is not supported"),
        ("a is None", "Python keyword 'is' is not supported"),
        ("True", "Python keyword 'True'"),
        ("f(x)(y)", "unknown function 'f'"),
        ("abs(x)(y)", "unexpected token '('"),
        ("x; import os", "unexpected character ';'"),
        ("{x}", "unexpected character '{'"),
        ("x @ y", "unexpected character '@'"),
    ],
)
def test_python_constructs_are_syntax_errors(text, fragment):
    with pytest.raises(CutSyntaxError) as info:
        parse_cut(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "text, fragment",
    [
        # dunder and builtin calls, however they are reached
        ("__import__(os).system(x)", "unknown function '__import__' at column 1"),
        ("eval(met) > 1", "unknown function 'eval'"),
        ("exec(met)", "unknown function 'exec'"),
        ("getattr(met, x) > 1", "unknown function 'getattr'"),
        ("abs(met)(x) > 1", "unexpected token '(' at column 9"),
        # attribute access, also on parenthesised values and calls
        ("().__class__", "unexpected token ')' at column 2"),
        ("(met).__class__.__bases__ > 1", "unexpected character '.' at column 6"),
        ("abs(met).real > 1", "unexpected character '.' at column 9"),
        ("met . real > 1", "unexpected character '.' at column 5"),
        # subscripts, comprehensions, containers
        ("met[0] > 1", "unexpected character '['"),
        ("[m for m in met]", "unexpected character '['"),
        ("(m for m in met)", "Python keyword 'for' is not supported at column 4"),
        ("{m: 1}", "unexpected character '{'"),
        # strings of every kind, walrus, lambda, keyword and star arguments
        ("f'{met}' > 1", "unexpected character \"'\" at column 2"),
        ('b"x" > 1', "unexpected character '\"' at column 2"),
        ("(x := met) > 1", "unexpected character ':' at column 4"),
        ("lambda: met", "Python keyword 'lambda' is not supported"),
        ("abs(x=met) > 1", "unexpected character '=' at column 6"),
        ("abs(*met) > 1", "unpacking ('*') is not supported at column 5"),
        ("max(met, **x) > 1", "keyword arguments are not supported at column 10"),
        # other keywords, comments, line continuations, non-ASCII look-alikes
        ("met > 1 if x else 0", "Python keyword 'if' is not supported at column 9"),
        ("1if x else met", "Python keyword 'else' is not supported"),
        ("await met", "Python keyword 'await'"),
        ("None", "Python keyword 'None'"),
        ("met > 1 # and x", "unexpected character '#' at column 9"),
        ("met > 1 \\\n and x", "unexpected character '\\\\' at column 9"),
        ("\uff4d\uff45\uff54 > 1", "unexpected character '\uff4d' at column 1"),  # fullwidth 'met'
    ],
)
def test_code_execution_constructs_are_refused(text, fragment):
    with pytest.raises(CutSyntaxError) as info:
        parse_cut(text)
    assert fragment in str(info.value)
    assert f"in cut {text!r}" in str(info.value)


def test_parsing_never_evaluates_or_compiles_code(monkeypatch):
    import ast
    import builtins

    real_compile = builtins.compile

    def only_syntax_trees(source, filename, mode, flags=0, *args, **kwargs):
        assert flags & ast.PyCF_ONLY_AST, "a cut was compiled to code"
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("a cut was handed to eval/exec")

    columns = {"met": np.array([300.0, -300.0, 100.0]), "n": np.array([1, 1, 0])}
    with monkeypatch.context() as patch:
        patch.setattr(builtins, "compile", only_syntax_trees)
        patch.setattr(builtins, "eval", forbidden)
        patch.setattr(builtins, "exec", forbidden)
        values = parse_cut("abs(met) > 200 and not (n < 1 or sqrt(met) / 2 >= 30)").evaluate(columns)
    np.testing.assert_array_equal(values, [True, True, False])


def test_whitespace_of_any_kind_separates_tokens():
    cut = parse_cut("met >\n 200\tand\u00a0n == 1")
    np.testing.assert_array_equal(cut.evaluate({"met": np.array([300.0, 300.0]), "n": np.array([1, 2])}), [True, False])
    with pytest.raises(CutSyntaxError) as info:
        parse_cut("met >\n 200 and")
    assert "unexpected end of cut at column 15 in cut 'met >\\n 200 and'" in str(info.value)
    assert str(info.value).splitlines()[1:] == ["    met >  200 and", "    " + " " * 14 + "^"]


def test_length_cap():
    from processors.expressions import MAX_LENGTH

    text = "a > 1 and " * (MAX_LENGTH // 10) + "a > 1"
    with pytest.raises(CutSyntaxError, match=f"cut is too long \\({len(text)} characters, at most {MAX_LENGTH}\\)"):
        parse_cut(text)
    ok = "a > 1 and " * (MAX_LENGTH // 10 - 1) + "a > 1"
    assert len(ok) <= MAX_LENGTH and parse_cut(ok).columns == {"a"}


def test_nesting_caps_are_exact():
    from processors.expressions import MAX_DEPTH, MAX_NESTING

    assert parse_cut("(" * MAX_NESTING + "a" + ")" * MAX_NESTING + " > 1").columns == {"a"}
    with pytest.raises(CutSyntaxError, match="nested too deeply") as info:
        parse_cut("(" * (MAX_NESTING + 1) + "a" + ")" * (MAX_NESTING + 1) + " > 1")
    assert info.value.position == MAX_NESTING
    assert parse_cut("-" * MAX_NESTING + "a > 1").is_condition
    for prefix in ("-", "not ", "abs("):
        text = prefix * (MAX_NESTING + 1) + "a" + ")" * (MAX_NESTING + 1) * (prefix == "abs(") + " > 1"
        with pytest.raises(CutSyntaxError, match="nested too deeply"):
            parse_cut(text)
    # a sum of n terms is a tree of depth n + 1 (the comparison on top)
    assert parse_cut(" + ".join(["a"] * (MAX_DEPTH - 2)) + " > 1").columns == {"a"}
    with pytest.raises(CutSyntaxError, match="too deeply nested"):
        parse_cut(" + ".join(["a"] * MAX_DEPTH) + " > 1")
    with pytest.raises(CutSyntaxError, match="nested too deeply|too deeply nested"):
        parse_cut("-" * 9_000 + "a > 1")  # deeper than CPython's own parser goes


def test_unpickled_cut_is_checked_again():
    cut = parse_cut("met > 200")
    assert pickle.loads(pickle.dumps(cut)) == cut and hash(pickle.loads(pickle.dumps(cut))) == hash(cut)
    tampered = pickle.dumps(cut).replace(b"met > 200", b"met.x > 2")
    with pytest.raises(CutSyntaxError, match="attribute access"):
        pickle.loads(tampered)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("not 3", "'not' needs a condition but got a number at column 5"),
        ("a > 1 and 2", "'and' needs a condition but got a number at column 11"),
        ("a + 1 or b", "'or' needs a condition but got a number at column 1"),
        ("(a > 1) + 1 > 0", "operator '+' needs a number but got a condition at column 1"),
        ("a > 1 + (b > 1)", "operator '+' needs a number but got a condition at column 9"),
        ("(a > 1) < 2", "comparison '<' needs a number but got a condition"),
        ("(a > 1) == 2", "comparison '==' mixes a condition and a number"),
        ("abs(a > 1) > 0", "function 'abs' needs a number but got a condition"),
        ("-(a > 1)", "unary '-' needs a number but got a condition"),
    ],
)
def test_type_errors_known_at_parse_time(text, fragment):
    with pytest.raises(CutSyntaxError) as info:
        parse_cut(text)
    assert fragment in str(info.value)


def test_numeric_top_level_expression_is_not_a_cut(cols):
    cut = parse_cut("met + 3")  # parses: usable as a value via .values()
    with pytest.raises(CutEvaluationError, match=r"cut 'met \+ 3' is a numeric expression, not a condition"):
        cut.evaluate(cols)


def test_bare_numeric_column_is_not_a_condition(cols):
    with pytest.raises(CutEvaluationError, match=r"does not evaluate to booleans \(dtype float64\)"):
        ev("met", cols)
    with pytest.raises(CutEvaluationError, match=r"column 'a' used as a condition by 'or' at column 1"):
        ev("a or b", cols)


def test_unusable_columns_are_named():
    with pytest.raises(CutEvaluationError, match=r"column 'jets' used in cut 'jets > 1' is not a flat array"):
        parse_cut("jets > 1").evaluate({"jets": ak.Array([[1.0], [2.0, 3.0]])})
    with pytest.raises(CutEvaluationError, match=r"column 'opt'"):
        parse_cut("opt > 1").evaluate({"opt": ak.Array([1.0, None])})
    with pytest.raises(CutEvaluationError, match=r"column 'name' .* dtype <U3"):
        parse_cut("name > 1").evaluate({"name": np.array(["abc"])})
    with pytest.raises(CutEvaluationError, match=r"cannot evaluate cut 'a > b'"):
        parse_cut("a > b").evaluate({"a": np.zeros(3), "b": np.zeros(4)})


def test_deep_nesting_is_rejected_cleanly():
    with pytest.raises(CutSyntaxError, match="nested too deeply"):
        parse_cut("(" * 500 + "a" + ")" * 500 + " > 1")
    with pytest.raises(CutSyntaxError, match="nested too deeply"):
        parse_cut("-" * 500 + "a > 1")
    with pytest.raises(CutSyntaxError, match="too deeply nested"):
        parse_cut(" + ".join(["a"] * 500) + " > 1")


def test_long_and_chains_are_fine():
    n = 300
    cols = {f"x{i}": np.array([1.0, -1.0]) for i in range(n)}
    text = " and ".join(f"x{i} > 0" for i in range(n))
    np.testing.assert_array_equal(parse_cut(text).evaluate(cols), [True, False])


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="must be a string"):
        parse_cut(3)  # type: ignore[arg-type]
