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
"""A builder method: ``method(children, starts, start, end)``."""

_StackReduce = Callable[[list[Any], int, int], Any]
"""A generated reduce function: ``reduce(stack, start, end)``."""


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
        reductions: dict[Any, int] = {}
        # One table per state, plain str keys (lark's keys are Token objects whose __eq__ is
        # Python code): terminal or nonterminal name -> action. A shift or goto is the next
        # state (>= 0); a reduction is ``~i`` (< 0), ``i`` indexing ``self._rules``, whose
        # entries are (stack offset of the rule's first entry, origin, reduce or None).
        self._table: list[dict[str, int]] = [{} for _ in range(count)]
        self._rules: list[tuple[int, str, _StackReduce | None]] = []
        for state, row in table.states.items():
            for symbol, (action, arg) in row.items():
                key = str(symbol)
                if action is Shift:
                    self._table[state][key] = arg
                    continue
                if arg not in reductions:
                    reduce = _make_reduce(arg, builder)
                    size = len(arg.expansion)
                    # A unit rule that only passes its child on (`?mogr_op: thumbnail`)
                    # needs no call: the driver just moves to the goto state.
                    unit = size == 1 and getattr(reduce, "passthrough", False)
                    reductions[arg] = len(self._rules)
                    self._rules.append((-4 * size, str(arg.origin.name), None if unit else reduce))
                self._table[state][key] = ~reductions[arg]
        never = re.compile(r"(?!)").match
        self._scanners: list[Callable[[str, int], re.Match[str] | None]] = [never] * count
        # States whose terminals are all one-character literals ("/", "|", "x" ...): the
        # next character alone names the terminal, no regex needed (None: use the regex).
        self._chars: list[dict[str, str] | None] = [None] * count
        for state, lexer in frontend.lexer.lexers.items():
            mres = lexer.scanner._mres
            chars = _single_chars(lexer)
            if chars is not None and len(mres) == 1 and set(mres[0].groupindex) == set(chars.values()):
                self._chars[state] = chars
            if len(mres) == 1:
                self._scanners[state] = mres[0].match
            elif mres:  # lark splits very large alternations; try each part in order
                self._scanners[state] = _chain(tuple(m.match for m in mres))
        self.terminals = {t.name: t for t in lark_obj.terminals}

    def expected(self, state: int) -> frozenset[str]:
        return frozenset(s for s in self._table[state] if s.isupper() or s == END)

    def parse(self, text: str) -> Any:
        table = self._table
        rules = self._rules
        scanners = self._scanners
        single = self._chars
        end_state = self._end
        state = self._start
        # One flat stack, four slots per entry: state, value, start offset, end offset.
        stack: list[Any] = [state, None, 0, 0]
        extend = stack.extend
        pos = 0
        n = len(text)
        while True:
            if pos < n:
                chars = single[state]
                if chars is not None and (token := text[pos]) in chars:
                    term = chars[token]
                    tok_start = pos
                    pos += 1
                else:
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
                try:
                    action = table[state][term]  # type: ignore[index]
                except KeyError:
                    raise SyntaxFailure(tok_start, token, term, self.expected(state)) from None
                if action >= 0:  # shift
                    state = action
                    extend((state, token, tok_start, pos))
                    break
                base, origin, reduce = rules[~action]
                if reduce is None:  # unit pass-through: only the goto state changes
                    state = table[stack[-8]][origin]
                    if state == end_state and term == END:
                        return stack[-3]
                    stack[-4] = state
                    continue
                if base:
                    rule_start = stack[base + 2]
                    rule_end = stack[-1]
                    value = reduce(stack, rule_start, rule_end)
                    del stack[base:]
                else:
                    rule_start = rule_end = tok_start
                    value = reduce(stack, rule_start, rule_end)
                state = table[stack[-4]][origin]
                if state == end_state and term == END:
                    return value
                extend((state, value, rule_start, rule_end))


def _single_chars(lexer: Any) -> dict[str, str] | None:
    """character -> terminal name when every terminal of ``lexer`` is a plain
    one-character literal (no flags), else None."""
    if lexer.g_regex_flags or lexer.ignore_types:
        return None
    chars: dict[str, str] = {}
    for terminal in lexer.terminals:
        pattern = terminal.pattern
        if pattern.type != "str" or pattern.flags or len(pattern.value) != 1 or pattern.value in chars:
            return None
        chars[pattern.value] = terminal.name
    return chars or None


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


def _make_reduce(rule: Any, builder: object) -> _StackReduce:
    """The reduce function of one rule, generated with its kept stack slots inlined (one
    Python call per reduction instead of three). It is called as ``reduce(stack, start,
    end)`` while the rule's entries are still the top of the driver's stack."""
    expansion = rule.expansion
    size = len(expansion)
    keep_all = rule.options.keep_all_tokens
    kept = tuple(i for i, sym in enumerate(expansion) if keep_all or not (sym.is_term and sym.filter_out))
    spliced = frozenset(i for i in kept if not expansion[i].is_term and expansion[i].name.startswith("_"))
    origin = str(rule.origin.name)
    name = str(rule.alias) if rule.alias else origin
    inline = bool(rule.options.expand1) and not rule.alias

    def v(i: int) -> str:  # the value of child i
        return f"s[{4 * (i - size) + 1}]"

    def p(i: int) -> str:  # the start offset of child i
        return f"s[{4 * (i - size) + 2}]"

    head = "def reduce(s, start, end):"
    if origin.startswith("_") and kept and kept[0] == 0 and spliced == {0}:
        # lark's left-recursive list helper (`__x_star: __x_star item | item`): the
        # accumulated splice is consumed exactly once, so grow it in place.
        lines = [head, f"    acc = {v(0)}"]
        lines += [f"    acc.values.append({v(i)}); acc.starts.append({p(i)})" for i in kept[1:]]
        lines.append("    return acc")
        return _compile(lines, {})

    if spliced:
        body = ["    cv = []", "    cp = []"]
        for i in kept:
            if i in spliced:
                body.append(f"    cv += {v(i)}.values; cp += {v(i)}.starts")
            else:
                body.append(f"    cv.append({v(i)}); cp.append({p(i)})")
    else:
        body = [f"    cv = [{', '.join(v(i) for i in kept)}]", f"    cp = [{', '.join(p(i) for i in kept)}]"]

    if origin.startswith("_"):
        return _compile([head, *body, "    return Splice(cv, cp)"], {"Splice": _Splice})

    if inline and len(kept) == 1 and not spliced:
        reduce = _compile([head, f"    return {v(kept[0])}"], {})
        reduce.passthrough = True  # type: ignore[attr-defined]
        return reduce

    method = getattr(builder, name, None)
    if method is None:
        raise TypeError(f"builder has no method for grammar rule {name!r}")
    if getattr(method, "passthrough", False) and kept == (0,) and size == 1 and not spliced:
        # A builder method that returns its only child as it is (marked so): no call.
        reduce = _compile([head, f"    return {v(0)}"], {})
        reduce.passthrough = True  # type: ignore[attr-defined]
        return reduce
    tail = ["    if len(cv) == 1:", "        return cv[0]"] if inline else []
    return _compile([head, *body, *tail, "    return method(cv, cp, start, end)"], {"method": method})


def _compile(lines: list[str], namespace: dict[str, Any]) -> _StackReduce:
    exec("\n".join(lines), namespace)  # noqa: S102 - code generated from the grammar's rule shapes
    return namespace["reduce"]  # type: ignore[no-any-return]
