"""JSON Schema regular expressions in linear time: Python ``re`` semantics, evaluated by RE2.

grand-challenge evaluates ``pattern`` and ``patternProperties`` with Python's ``re``, a
backtracking engine: ``^(a+)+$`` against 31 ``a`` and a ``!`` takes minutes and holds the GIL,
so one interface could freeze the whole operator. RE2 (google-re2) matches in time linear in
the text, but its dialect differs from Python's in places that change verdicts (``\\d`` is
ASCII in RE2 and Unicode in Python, ``$`` also matches before a final newline in Python,
``\\Z`` is spelled ``\\z`` ...). So a pattern is not handed to RE2 as written:

1. it is parsed by Python's own regular-expression parser (``re._parser``), so what a
   pattern means, and which patterns are errors, is exactly Python's;
2. the parse tree is written out again in RE2 syntax, with every character class spelled as
   explicit code-point ranges computed from the predicates Python's engine uses
   (``str.isdecimal``, ``str.isalnum``, ``str.isspace``), so ``\\d``, ``\\w``, ``\\s`` and
   ``.`` match the same characters;
3. whatever cannot be written out with the same meaning is left to Python ``re``:
   lookaround, backreferences, conditionals, atomic groups and possessive repeats (RE2 has
   none), case-insensitive matching (Unicode case folding differs), counted repeats above
   RE2's 1000, a non-final ``$``, and ``\\b`` on non-ASCII text (RE2's word boundary is ASCII).

Python ``re`` may only run where a runaway match is bounded: ``search(..., python=True)`` is
for the validation workers of ``sandbox``; elsewhere such a pattern raises
``PythonRegexRequired`` instead of running.

Private API: ``re._parser`` is CPython's parser (``sre_parse`` before 3.11). Any parse node
this module does not know makes the pattern fall back to Python ``re``: a new CPython can
make RE2 used less, never make a verdict differ.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import re2

try:  # CPython >= 3.11
    from re import _constants as _sre  # type: ignore[attr-defined]
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older or other interpreters: Python re everywhere
    _sre = _sre_parse = None

#: RE2 refuses counted repetitions above 1000 (``{1001}``).
RE2_MAX_REPEAT = 1000
#: Memory one compiled pattern may use (program and DFA cache; RE2's default); a pattern that
#: needs more falls back to Python re. Even 200 Unicode \w classes need well under 1 MiB.
RE2_MAX_MEMORY = 8 * 1024 * 1024
#: Longest translation written out. Every \w becomes some 700 ranges (12 KB of text), so a
#: pattern of many \w would otherwise cost gigabytes before RE2 even sees it.
RE2_MAX_PATTERN_CHARS = 1024 * 1024
_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)


class PythonRegexRequired(Exception):
    """A pattern (or a text) that only Python ``re`` evaluates faithfully, outside a sandbox.

    Deliberately not a ``ValueError``: it must never be mistaken for an invalid value.
    """

    def __init__(self, pattern: str, reason: str) -> None:
        self.pattern = pattern
        self.reason = reason
        super().__init__(f"pattern {_short(pattern)} {reason}")


@dataclass(frozen=True)
class Pattern:
    """One JSON Schema pattern: its RE2 translation when there is a faithful one.

    ``reason`` says why there is none (``uses lookaround``); ``ascii_text_only``: the
    translation is faithful only for ASCII text (it contains ``\\b``/``\\B``);
    ``nonempty_text_only``: only for non-empty text (``\\B``).
    """

    source: str
    re2: Any = None
    reason: str = ""
    ascii_text_only: bool = False
    nonempty_text_only: bool = False

    def search(self, text: str, *, python: bool) -> bool:
        """``re.search(source, text) is not None``, in linear time unless ``python`` allows re."""
        reason = self._why_python(text)
        if not reason:
            try:
                return self.re2.search(text) is not None
            except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): not UTF-8
                reason = "is matched against text with a lone surrogate, which RE2 cannot read"
        if not python:
            raise PythonRegexRequired(self.source, reason)
        return re.search(self.source, text) is not None

    def _why_python(self, text: str) -> str:
        if self.re2 is None:
            return self.reason
        if self.ascii_text_only and not text.isascii():
            return "uses \\b or \\B, which RE2 evaluates differently on non-ASCII text"
        if self.nonempty_text_only and not text:
            return "uses \\B, which never matches empty text in Python but does in RE2"
        return ""


@functools.lru_cache(maxsize=512)
def compile_pattern(source: str) -> Pattern:
    """The ``Pattern`` of a string that Python ``re`` compiles (``re.error`` otherwise).

    Cached: a pattern is translated once per process; the cache is bounded (512 patterns of
    at most ``RE2_MAX_MEMORY`` each, in practice kilobytes).
    """
    re.compile(source)  # Python's verdict on the syntax: raise exactly what jsonschema would
    if _sre_parse is None:  # pragma: no cover
        return Pattern(source, reason="cannot be translated on this Python")
    try:
        tree = _sre_parse.parse(source)
        writer = _Writer()
        translated = writer.sequence(list(tree), tree.state.flags, tail=True)
    except _Untranslatable as err:
        return Pattern(source, reason=str(err))
    options = re2.Options()
    options.log_errors = False
    options.max_mem = RE2_MAX_MEMORY
    try:
        compiled = re2.compile(translated, options)
    except re2.error as err:
        return Pattern(source, reason=f"is too large or complex for RE2 ({_decode(err)})")
    return Pattern(source, compiled, ascii_text_only=writer.uses_word_boundary,
                   nonempty_text_only=writer.uses_non_boundary)


def search(source: str, text: str, *, python: bool) -> bool:
    """``re.search(source, text)`` as a verdict (see ``Pattern.search``)."""
    return compile_pattern(source).search(text, python=python)


# ---------------------------------------------------------------------------------------
# Translation: Python parse tree -> RE2 syntax with the same meaning
# ---------------------------------------------------------------------------------------


class _Untranslatable(Exception):
    """Why a parse tree has no faithful RE2 form (the message ends "pattern ... <reason>")."""


class _Writer:
    def __init__(self) -> None:
        self.uses_word_boundary = False
        self.uses_non_boundary = False
        self.size = 0

    def emit(self, text: str) -> str:
        self.size += len(text)
        if self.size > RE2_MAX_PATTERN_CHARS:
            raise _Untranslatable(f"is too large to translate to RE2 (over {RE2_MAX_PATTERN_CHARS} characters written)")
        return text

    def sequence(self, items: list, flags: int, *, tail: bool) -> str:
        last = len(items) - 1
        return "".join(self.node(op, av, flags, tail=tail and i == last) for i, (op, av) in enumerate(items))

    def node(self, op: Any, av: Any, flags: int, *, tail: bool) -> str:
        c = _sre
        if flags & c.SRE_FLAG_IGNORECASE:
            raise _Untranslatable("matches case-insensitively, and RE2's Unicode case folding differs from Python's")
        if op is c.LITERAL:
            return self.emit(_char_class([(av, av)]) if _is_surrogate(av) else _literal(av))
        if op is c.NOT_LITERAL:
            return self.emit(_char_class(_complement([(av, av)])))
        if op is c.ANY:
            return self.emit(_char_class(_ALL if flags & c.SRE_FLAG_DOTALL else _complement([(10, 10)])))
        if op is c.IN:
            return self.emit(_char_class(_class_ranges(av, flags)))
        if op is c.BRANCH:
            return "(?:" + "|".join(self.sequence(list(alt), flags, tail=tail) for alt in av[1]) + ")"
        if op is c.SUBPATTERN:
            _group, add, remove, inner = av
            if (add | remove) & (c.SRE_FLAG_ASCII | c.SRE_FLAG_UNICODE | c.SRE_FLAG_LOCALE):
                # CPython compiles character classes inside a scoped (?a:...) with Unicode
                # categories in some cases; only a global (?a) has one documented meaning.
                raise _Untranslatable("switches between ASCII and Unicode matching inside the pattern")
            return "(?:" + self.sequence(list(inner), (flags | add) & ~remove, tail=tail) + ")"
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):
            low, high, inner = av
            return self.repeat(low, high, self.sequence(list(inner), flags, tail=tail and high <= 1))
        if op is c.AT:
            return self.anchor(av, flags, tail=tail)
        if op in (c.ASSERT, c.ASSERT_NOT):
            raise _Untranslatable("uses lookaround, which RE2 does not support")
        if op in (c.GROUPREF, c.GROUPREF_EXISTS):
            raise _Untranslatable("uses backreferences, which RE2 does not support")
        if op in (getattr(c, "ATOMIC_GROUP", None), getattr(c, "POSSESSIVE_REPEAT", None)):
            raise _Untranslatable("uses atomic groups or possessive repeats, which RE2 does not support")
        raise _Untranslatable(f"uses {op}, which is not translated to RE2")

    @staticmethod
    def repeat(low: int, high: int, body: str) -> str:
        unbounded = high == _sre.MAXREPEAT
        if low > RE2_MAX_REPEAT or (not unbounded and high > RE2_MAX_REPEAT):
            raise _Untranslatable(f"repeats more than {RE2_MAX_REPEAT} times, more than RE2 counts")
        if unbounded:
            suffix = "*" if low == 0 else "+" if low == 1 else f"{{{low},}}"
        else:
            suffix = f"{{{low}}}" if low == high else f"{{{low},{high}}}"
        return f"(?:{body}){suffix}"

    def anchor(self, code: Any, flags: int, *, tail: bool) -> str:
        c = _sre
        multiline = bool(flags & c.SRE_FLAG_MULTILINE)
        if code is c.AT_BEGINNING_STRING or (code is c.AT_BEGINNING and not multiline):
            return r"\A"
        if code is c.AT_BEGINNING:
            return "(?m:^)"
        if code is c.AT_END_STRING:
            return r"\z"  # Python's \Z is RE2's \z: the very end
        if code is c.AT_END and multiline:
            return "(?m:$)"  # before any newline, or at the end: the same in both
        if code is c.AT_END:
            # Python's $ also matches just before a final newline. RE2 has no such anchor, but
            # at the very end of a pattern, consuming that newline gives the same verdict.
            if not tail:
                raise _Untranslatable("uses $ before the end of the pattern, where RE2's $ differs from Python's")
            return r"(?:\n?\z)"
        if code in (c.AT_BOUNDARY, c.AT_NON_BOUNDARY):
            # RE2's \b is ASCII and looks at UTF-8 bytes (so \B matches inside a multi-byte
            # character); on ASCII text both engines agree, with or without (?a).
            self.uses_word_boundary = True
            if code is c.AT_NON_BOUNDARY:
                self.uses_non_boundary = True
            return r"\b" if code is c.AT_BOUNDARY else r"\B"
        raise _Untranslatable(f"uses the anchor {code}, which is not translated to RE2")


def _class_ranges(items: list, flags: int) -> list[tuple[int, int]]:
    c = _sre
    negate = False
    ranges: list[tuple[int, int]] = []
    for op, av in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            ranges.append((av, av))
        elif op is c.RANGE:
            ranges.append(av)
        elif op is c.CATEGORY:
            ranges.extend(_category(av, ascii_only=bool(flags & c.SRE_FLAG_ASCII)))
        else:
            raise _Untranslatable(f"uses {op} in a character class, which is not translated to RE2")
    ranges = _normalise(ranges)
    return _complement(ranges) if negate else ranges


def _category(code: Any, *, ascii_only: bool) -> list[tuple[int, int]]:
    c = _sre
    positive = {
        c.CATEGORY_DIGIT: "digit", c.CATEGORY_NOT_DIGIT: "digit",
        c.CATEGORY_SPACE: "space", c.CATEGORY_NOT_SPACE: "space",
        c.CATEGORY_WORD: "word", c.CATEGORY_NOT_WORD: "word",
    }.get(code)
    if positive is None:
        raise _Untranslatable(f"uses the category {code}, which is not translated to RE2")
    ranges = list(_category_ranges(positive, ascii_only))
    if code in (c.CATEGORY_NOT_DIGIT, c.CATEGORY_NOT_SPACE, c.CATEGORY_NOT_WORD):
        return _complement(ranges)
    return ranges


@functools.cache
def _category_ranges(name: str, ascii_only: bool) -> tuple[tuple[int, int], ...]:
    """Code points of ``\\d``, ``\\s`` or ``\\w`` as Python's engine decides them.

    Asked of Python's engine itself: the runs that ``\\d+`` (``(?a)\\d+`` ...) finds in a text
    of every code point, in order, are exactly the ranges. Computed once per process and
    category (~0.1 s; the 4 MiB text is dropped again).
    """
    category = {"digit": r"\d", "space": r"\s", "word": r"\w"}[name]
    runs = re.compile(("(?a)" if ascii_only else "") + category + "+")
    return tuple(_normalise([(m.start(), m.end() - 1) for m in runs.finditer(_every_code_point())]))


def _every_code_point() -> str:
    return "".join(map(chr, range(_MAX_CODE_POINT + 1)))  # index == code point


_ALL = [(0, _SURROGATES[0] - 1), (_SURROGATES[1] + 1, _MAX_CODE_POINT)]


def _normalise(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged ranges without surrogates (RE2 works on UTF-8, which has none)."""
    cut: list[tuple[int, int]] = []
    for low, high in ranges:
        if low <= _SURROGATES[1] and high >= _SURROGATES[0]:
            if low < _SURROGATES[0]:
                cut.append((low, _SURROGATES[0] - 1))
            if high > _SURROGATES[1]:
                cut.append((_SURROGATES[1] + 1, high))
        else:
            cut.append((low, high))
    merged: list[tuple[int, int]] = []
    for low, high in sorted(cut):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    result: list[tuple[int, int]] = []
    nxt = 0
    for low, high in _normalise(ranges):
        if low > nxt:
            result.append((nxt, low - 1))
        nxt = high + 1
    if nxt <= _MAX_CODE_POINT:
        result.append((nxt, _MAX_CODE_POINT))
    return _normalise(result)


def _is_surrogate(point: int) -> bool:
    return _SURROGATES[0] <= point <= _SURROGATES[1]


def _literal(point: int) -> str:
    return f"\\x{{{point:x}}}"


def _char_class(ranges: list[tuple[int, int]]) -> str:
    ranges = _normalise(ranges)
    if not ranges:
        return r"[^\x00-\x{10ffff}]"  # matches nothing (e.g. [^\s\S], or a lone surrogate)
    parts = (_literal(low) if low == high else f"{_literal(low)}-{_literal(high)}" for low, high in ranges)
    return "[" + "".join(parts) + "]"


def _decode(err: Exception) -> str:
    text = err.args[0] if err.args else err
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _short(text: str, limit: int = 60) -> str:
    shown = text if len(text) <= limit else text[: limit - 3] + "..."
    return repr(shown)
