"""A lean LALR(1) driver over the tables lark compiles from ``grammar/ci.lark``.

lark compiles the grammar (LALR tables and one lexer per parser state, exactly what its
contextual lexer uses); this module only *runs* those tables. lark's own run-time loop
builds a ``Token`` object per token and walks generic tree-builder callbacks, which costs
about 4x what the processing-string workload can afford (``benchmarks/parse.py``). The
driver keeps lark's semantics:

* terminal filtering per rule position (anonymous ``"..."`` literals are dropped unless the
  rule is ``!``-prefixed), so a builder method receives the same children a lark
  ``Transformer`` would;
* ``?rule`` inlining (one child, no alias), aliases (``-> name``), and the splicing of
  lark's generated ``__*_star``/``__*_plus`` helper rules into their parent;
* the contextual lexer: at each state only the terminals that state accepts are tried,
  in lark's priority order.

Builder methods are called as ``method(children, starts, start, end)``: the kept children,
the start offset of each child, and the span of the whole rule. Syntax errors are raised as
:class:`_SyntaxFailure` carrying the state, so the caller can phrase the error.
``tests/unit/test_lalr.py`` checks the driver against lark's own parser.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # lark is imported when a Driver is built, not with this module
    from lark import Lark

__all__ = ["Driver", "SyntaxFailure"]

END = "$END"


class SyntaxFailure(Exception):
    """No action for the next token (or no terminal matches at ``pos``)."""

    def __init__(self, pos: int, token: str, term: str | None, expected: frozenset[str]) -> None:
        super().__init__(pos, token, term)
        self.pos = pos
        self.token = token
        self.term = term
        self.expected = expected


class _Splice:
    """Children of one of lark's generated helper rules, to be spliced into the parent."""

    __slots__ = ("starts", "values")

    def __init__(self, values: list[Any], starts: list[int]) -> None:
        self.values = values
        self.starts = starts


Reduce = Callable[[list[Any], list[int], int, int], Any]


class Driver:
    """Run the LALR tables of ``lark_obj`` (``parser="lalr"``, ``lexer="contextual"``,
    ``maybe_placeholders=False``) and build values with ``builder``'s methods."""

    def __init__(self, lark_obj: Lark, builder: object, start: str = "start") -> None:
        from lark.parsers.lalr_analysis import Shift

        frontend: Any = lark_obj.parser
        table = frontend.parser.parser.parse_table
        self._start = table.start_states[start]
        self._end = table.end_states[start]
        count = max(table.states) + 1
        reductions: dict[Any, tuple[int, str, Reduce | None]] = {}
        # Per state: terminal or nonterminal name -> next state (shifts and gotos), and
        # terminal -> (size, origin, reduce). Lists indexed by state, plain str keys: lark's
        # keys are Token objects whose __eq__ is Python code.
        self._shifts: list[dict[str, int]] = [{} for _ in range(count)]
        self._reduces: list[dict[str, tuple[int, str, Reduce | None]]] = [{} for _ in range(count)]
        for state, row in table.states.items():
            for symbol, (action, arg) in row.items():
                key = str(symbol)
                if action is Shift:
                    self._shifts[state][key] = arg
                    continue
                if arg not in reductions:
                    reduce = _make_reduce(arg, builder)
                    size = len(arg.expansion)
                    # A unit rule that only passes its child on (`?mogr_op: thumbnail`)
                    # needs no call: the driver just moves to the goto state.
                    unit = size == 1 and getattr(reduce, "passthrough", False)
                    reductions[arg] = (size, str(arg.origin.name), None if unit else reduce)
                self._reduces[state][key] = reductions[arg]
        never = re.compile(r"(?!)").match
        self._scanners: list[Callable[[str, int], re.Match[str] | None]] = [never] * count
        for state, lexer in frontend.lexer.lexers.items():
            mres = lexer.scanner._mres
            if len(mres) == 1:
                self._scanners[state] = mres[0].match
            elif mres:  # lark splits very large alternations; try each part in order
                self._scanners[state] = _chain(tuple(m.match for m in mres))
        self.terminals = {t.name: t for t in lark_obj.terminals}

    def expected(self, state: int) -> frozenset[str]:
        keys = set(self._reduces[state]) | set(self._shifts[state])
        return frozenset(s for s in keys if s.isupper() or s == END)

    def parse(self, text: str) -> Any:
        shifts = self._shifts
        reduces = self._reduces
        scanners = self._scanners
        end_state = self._end
        state = self._start
        # One flat stack, four slots per entry: state, value, start offset, end offset.
        stack: list[Any] = [state, None, 0, 0]
        extend = stack.extend
        pos = 0
        n = len(text)
        while True:
            if pos < n:
                match = scanners[state](text, pos)
                if match is None:
                    raise SyntaxFailure(pos, text[pos], None, self.expected(state))
                term = match.lastgroup
                tok_start = pos
                pos = match.end()
                token = text[tok_start:pos]
            else:
                term = END
                token = ""
                tok_start = n
            while True:
                nxt = shifts[state].get(term)  # type: ignore[arg-type]
                if nxt is not None:
                    state = nxt
                    extend((state, token, tok_start, pos))
                    break
                action = reduces[state].get(term)  # type: ignore[arg-type]
                if action is None:
                    raise SyntaxFailure(tok_start, token, term, self.expected(state))
                size, origin, reduce = action
                if reduce is None:  # unit pass-through: only the goto state changes
                    state = shifts[stack[-8]][origin]
                    if state == end_state and term == END:
                        return stack[-3]
                    stack[-4] = state
                    continue
                if size:
                    base = -4 * size
                    rule_start = stack[base + 2]
                    rule_end = stack[-1]
                    value = reduce(stack[base + 1 :: 4], stack[base + 2 :: 4], rule_start, rule_end)
                    del stack[base:]
                else:
                    rule_start = rule_end = tok_start
                    value = reduce([], [], rule_start, rule_end)
                state = shifts[stack[-4]][origin]
                if state == end_state and term == END:
                    return value
                extend((state, value, rule_start, rule_end))


def _chain(
    matchers: tuple[Callable[[str, int], re.Match[str] | None], ...],
) -> Callable[[str, int], re.Match[str] | None]:
    def match(text: str, pos: int) -> re.Match[str] | None:
        for m in matchers:
            found = m(text, pos)
            if found is not None:
                return found
        return None

    return match


def _make_reduce(rule: Any, builder: object) -> Reduce:
    """The reduce function of one rule, generated with its kept indices inlined (one
    Python call per reduction instead of three)."""
    expansion = rule.expansion
    keep_all = rule.options.keep_all_tokens
    kept = tuple(i for i, sym in enumerate(expansion) if keep_all or not (sym.is_term and sym.filter_out))
    spliced = frozenset(i for i in kept if not expansion[i].is_term and expansion[i].name.startswith("_"))
    origin = str(rule.origin.name)
    name = str(rule.alias) if rule.alias else origin
    inline = bool(rule.options.expand1) and not rule.alias

    if origin.startswith("_") and kept and kept[0] == 0 and spliced == {0}:
        # lark's left-recursive list helper (`__x_star: __x_star item | item`): the
        # accumulated splice is consumed exactly once, so grow it in place.
        lines = ["def reduce(v, p, start, end):", "    acc = v[0]"]
        lines += [f"    acc.values.append(v[{i}]); acc.starts.append(p[{i}])" for i in kept[1:]]
        lines.append("    return acc")
        return _compile(lines, {})

    if spliced:
        body = ["    cv = []", "    cp = []"]
        for i in kept:
            if i in spliced:
                body.append(f"    cv += v[{i}].values; cp += v[{i}].starts")
            else:
                body.append(f"    cv.append(v[{i}]); cp.append(p[{i}])")
    elif len(kept) == len(expansion):
        body = ["    cv = v", "    cp = p"]
    else:
        body = [f"    cv = [{', '.join(f'v[{i}]' for i in kept)}]", f"    cp = [{', '.join(f'p[{i}]' for i in kept)}]"]

    if origin.startswith("_"):
        return _compile(["def reduce(v, p, start, end):", *body, "    return Splice(cv, cp)"], {"Splice": _Splice})

    if inline and len(kept) == 1 and not spliced:
        only = kept[0]
        reduce = _compile(["def reduce(v, p, start, end):", f"    return v[{only}]"], {})
        reduce.passthrough = True  # type: ignore[attr-defined]
        return reduce

    method = getattr(builder, name, None)
    if method is None:
        raise TypeError(f"builder has no method for grammar rule {name!r}")
    tail = ["    if len(cv) == 1:", "        return cv[0]"] if inline else []
    return _compile(
        ["def reduce(v, p, start, end):", *body, *tail, "    return method(cv, cp, start, end)"], {"method": method}
    )


def _compile(lines: list[str], namespace: dict[str, Any]) -> Reduce:
    exec("\n".join(lines), namespace)  # noqa: S102 - code generated from the grammar's rule shapes
    return namespace["reduce"]  # type: ignore[no-any-return]
