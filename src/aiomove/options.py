"""DCMTK-style command lines, table driven (the rules of DCMTK's OFCommandLine).

Why not click/typer: DCMTK's options are not POSIX. `-aet` is one option after a single dash,
`+x=` and `+P 104` start with a plus, several options sharing one setting form an exclusive
group where the *rightmost* wins, and `@file` pulls arguments from a command file. The typer
command hands its raw arguments to `parse()`, which follows DCMTK 3.6.7 (ofstd/libsrc/ofcmdln.cc,
ofconapp.cc; behaviour checked against the installed `movescu`):

1. Every `@file` argument (longer than "@") is replaced by the file's words before anything
   else: whitespace separates words, "..." or '...' group them (an empty pair is an empty
   word), the other quote is literal inside. Command files do not nest: an `@x` read from a
   file stays a plain argument. An unreadable file: "Cannot open command file 'x'".
2. An argument is an option when it has two or more characters, starts with '-' or '+', and
   its second character is not a digit (so `-5` is a parameter). Options match their short or
   long spelling exactly: no abbreviations, no `--opt=value`.
3. An option with N values takes the next N arguments verbatim, even `-x` (`-k 0010,0010=-x`,
   `-to -k` makes "-k" the timeout). Parsing stops at the first unknown option ("Unknown option
   --foo") or missing value ("Missing value for option --timeout").
4. Exclusive options (`--help`, `--version`) then win: no parameter or value is checked. No
   arguments at all, with a mandatory parameter, means help.
5. Missing or extra parameters: "Missing parameter port", "Too many parameters".
6. Options setting the same destination form a group; the rightmost occurrence on the command
   line wins (for one option given twice, too). Repeatable options (`-k`) collect in order.
7. Values are checked for the last occurrence of each option, as DCMTK does: "Invalid value
   for option --timeout (x)", "(underflow: 0)", "(overflow: 200000)"; parameters: "Invalid
   parameter value 0 (underflow)".
8. Then the command's own checks (conflicts such as "--write-xfer-little not allowed with
   --bit-preserving"), see `aiomove.options_specs`.

Deliberate differences: integers are decimal only and must be whole ("5x", "010" as octal and
"0x10" are rejected where sscanf would take a prefix); seconds may be fractional. Every
`OptionError` maps to exit code 1, DCMTK's EXITCODE_COMMANDLINE_SYNTAX_ERROR.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from aiomove.errors import AiomoveError

if TYPE_CHECKING:  # the tables live in options_specs (they import this module)
    from aiomove.options_specs import MOVESCU as MOVESCU
    from aiomove.options_specs import STORESCP as STORESCP

#: DCMTK's exit code for every command line error (EXITCODE_COMMANDLINE_SYNTAX_ERROR).
EXIT_SYNTAX = 1


class OptionError(AiomoveError):
    """A command line error, worded like DCMTK's; the CLI prints it and exits with 1."""

    exit_code = EXIT_SYNTAX


# --- value types -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Int:
    """A decimal integer in [min, max]; `unsigned` rejects a sign as DCMTK's %lu does."""

    min: int | None = None
    max: int | None = None
    unsigned: bool = False


@dataclass(frozen=True)
class Float:
    """A decimal number; `min_exclusive` makes `min` itself an underflow (timeouts: > 0)."""

    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False


@dataclass(frozen=True)
class Str:
    """Any string, or one of `choices` after case folding (`fold`: "lower", "upper" or "")."""

    choices: tuple[str, ...] = ()
    fold: Literal["lower", "upper", ""] = ""
    error: str = ""  # message for a value outside `choices` (default: DCMTK's generic one)


ValueType = Int | Float | Str

_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class _BadValue(Exception):
    """Why a value was refused: "invalid", "underflow" or "overflow"."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.message = message


def convert_value(vtype: ValueType, raw: str) -> Any:
    """`raw` converted by `vtype`; raises `_BadValue` (internal) when it does not fit."""
    if isinstance(vtype, Str):
        value = raw.lower() if vtype.fold == "lower" else raw.upper() if vtype.fold else raw
        if vtype.choices and value not in vtype.choices:
            raise _BadValue("invalid", vtype.error)
        return value
    number: int | float
    if isinstance(vtype, Int):
        if _INT_RE.fullmatch(raw) is None or (vtype.unsigned and raw[0] in "+-"):
            raise _BadValue("invalid")
        number = int(raw)
    else:
        if _FLOAT_RE.fullmatch(raw) is None:
            raise _BadValue("invalid")
        number = float(raw)
    low, high = vtype.min, vtype.max
    exclusive = isinstance(vtype, Float) and vtype.min_exclusive
    if low is not None and (number < low or (exclusive and number == low)):
        raise _BadValue("underflow")
    if high is not None and number > high:
        raise _BadValue("overflow")
    return number


# --- the tables ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionSpec:
    """One option: `short` and/or `long` spelling, what it sets (`dest`), how it reads in help.

    A flag (no `values`) stores `const` in `dest`; a value option stores its converted value
    (a tuple when it takes several). Options sharing a `dest` form an exclusive group where the
    rightmost wins. `repeatable` options append to a list instead. `unsupported` options are
    recognised (their values are consumed) but refused with that message.
    """

    short: str
    long: str
    dest: str
    help: str
    const: Any = True
    values: tuple[ValueType, ...] = ()
    metavar: str = ""  # DCMTK's value description, e.g. "[s]econds: integer (default: 30)"
    repeatable: bool = False
    group: str = ""
    subgroup: str = ""
    exclusive: bool = False  # DCMTK's AF_Exclusive (--help, --version)
    unsupported: str = ""

    @property
    def kind(self) -> Literal["flag", "value"]:
        return "value" if self.values else "flag"

    @property
    def name(self) -> str:
        """The spelling DCMTK uses in messages: the long one."""
        return self.long or self.short


@dataclass(frozen=True)
class ParamSpec:
    """A positional parameter; `dest` defaults to the name with '-' as '_'."""

    name: str
    help: str
    type: ValueType = Str()
    optional: bool = False
    variadic: bool = False
    dest: str = ""

    @property
    def key(self) -> str:
        return self.dest or self.name.replace("-", "_")


@dataclass(frozen=True)
class CommandSpec:
    """A command: its parameters, its options in help order, defaults and post-parse checks."""

    name: str
    description: str
    params: tuple[ParamSpec, ...]
    options: tuple[OptionSpec, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    checks: tuple[Callable[[ParsedArgs], None], ...] = ()
    long_column: int = 21  # DCMTK's LONGCOL
    short_column: int = 4  # DCMTK's SHORTCOL

    @cached_property
    def lookup(self) -> dict[str, OptionSpec]:
        """Every spelling -> its option (a spelling defined twice is a table bug)."""
        table: dict[str, OptionSpec] = {}
        for opt in self.options:
            for spelling in (opt.short, opt.long):
                if not spelling:
                    continue
                if spelling in table or not is_option(spelling):
                    raise ValueError(f"{self.name}: bad or duplicate option {spelling!r}")
                table[spelling] = opt
        clash = {o.dest for o in self.options} & {p.key for p in self.params}
        if clash:
            raise ValueError(f"{self.name}: options and parameters share {sorted(clash)}")
        return table

    @property
    def usage(self) -> str:
        """`name [options] peer port [dcmfile-in...]` (OFCommandLine::getSyntaxString)."""
        parts = [self.name, "[options]"] if self.options else [self.name]
        for p in self.params:
            text = p.name + ("..." if p.variadic else "")
            parts.append(f"[{text}]" if p.optional else text)
        return " ".join(parts)

    def default_values(self) -> dict[str, Any]:
        """Every destination at its default: `defaults`, else [] (repeatable), else False for
        plain switches, else None."""
        values: dict[str, Any] = {}
        for opt in self.options:
            if opt.dest in values:
                continue
            if opt.dest in self.defaults:
                default = self.defaults[opt.dest]
                values[opt.dest] = list(default) if opt.repeatable else default
            elif opt.repeatable:
                values[opt.dest] = []
            else:
                group = [o for o in self.options if o.dest == opt.dest]
                switch = all(o.kind == "flag" and o.const is True for o in group)
                values[opt.dest] = False if switch else None
        for p in self.params:
            values[p.key] = [] if p.variadic else None
        return values


class ParsedArgs:
    """The parse result: every destination (and parameter) by attribute or by key.

    `expanded` is the argument list after @file expansion with options in their long spelling
    (what `--arguments` prints); `source(dest)` is the option that set `dest`, if any.
    """

    def __init__(
        self,
        values: dict[str, Any],
        winners: dict[str, OptionSpec] | None = None,
        expanded: Sequence[str] = (),
    ) -> None:
        self._values = values
        self._winners = dict(winners or {})
        self.expanded = tuple(expanded)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __repr__(self) -> str:
        return f"ParsedArgs({self._values!r})"

    def given(self, dest: str) -> bool:
        """Whether an option on the command line set `dest`."""
        return dest in self._winners

    def source(self, dest: str) -> OptionSpec | None:
        """The (rightmost) option that set `dest`, None when it kept its default."""
        return self._winners.get(dest)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


# --- command files ---------------------------------------------------------------------------


def split_command_file(text: str) -> list[str]:
    """The words of a command file, as OFCommandLine::parseCommandFile splits them."""
    words: list[str] = []
    value = ""
    block = ""  # the quote character of an open quoted block
    for c in text:
        if c in "\"'":
            if block == c:  # closing quote: the word ends, even when empty
                words.append(value)
                value, block = "", ""
            elif not block:
                block = c
            else:
                value += c
        elif c in " \t\n\r" and not block:
            if value:
                words.append(value)
                value = ""
        else:
            value += c
    if value:  # also the rest of an unterminated quote, as DCMTK does
        words.append(value)
    return words


def expand_command_files(argv: Sequence[str]) -> list[str]:
    """`argv` with each `@file` replaced by its words (one level: no nesting)."""
    expanded: list[str] = []
    for arg in argv:
        if len(arg) > 1 and arg.startswith("@"):
            name = arg[1:]
            try:
                with open(name, "rb") as f:
                    data = f.read()
            except OSError:
                raise OptionError(f"Cannot open command file '{name}'") from None
            expanded.extend(split_command_file(os.fsdecode(data)))
        else:
            expanded.append(arg)
    return expanded


# --- parsing ---------------------------------------------------------------------------------


def is_option(arg: str) -> bool:
    """OFCommandLine::checkOption: '+'/'-' then anything but a digit (`-5` is a value)."""
    return len(arg) >= 2 and arg[0] in "+-" and not ("0" <= arg[1] <= "9")


@dataclass(frozen=True)
class _Seen:
    option: OptionSpec
    raw: tuple[str, ...]


def _tokenize(spec: CommandSpec, args: Sequence[str]) -> tuple[list[_Seen], list[str], list[str]]:
    """Options (with raw values), parameters, and the long-spelling argument list."""
    seen: list[_Seen] = []
    params: list[str] = []
    expanded: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not is_option(arg):
            params.append(arg)
            expanded.append(arg)
            continue
        opt = spec.lookup.get(arg)
        if opt is None:
            raise OptionError(f"Unknown option {arg}")
        count = len(opt.values)
        if i + count > len(args):
            raise OptionError(f"Missing value for option {opt.name}")
        raw = tuple(args[i : i + count])
        i += count
        seen.append(_Seen(opt, raw))
        expanded.extend((opt.name, *raw))
    return seen, params, expanded


def _value_error(opt: OptionSpec, raw: str, bad: _BadValue) -> OptionError:
    """DCMTK's OFCommandLine::getStatusString(E_ValueStatus) wording."""
    if bad.message:
        return OptionError(bad.message)
    if bad.kind == "invalid":
        detail = f" ({raw})" if raw else ""
    else:
        detail = f" ({bad.kind}: {raw})" if raw else ""
    return OptionError(f"Invalid value for option {opt.name}{detail}")


def _convert_option(opt: OptionSpec, raw: tuple[str, ...]) -> Any:
    if not opt.values:
        return opt.const
    converted = []
    for vtype, text in zip(opt.values, raw, strict=True):
        try:
            converted.append(convert_value(vtype, text))
        except _BadValue as bad:
            raise _value_error(opt, text, bad) from None
    return converted[0] if len(converted) == 1 else tuple(converted)


def _apply_options(
    spec: CommandSpec, seen: list[_Seen], values: dict[str, Any]
) -> dict[str, OptionSpec]:
    """Check the last occurrence of each option (in table order), then apply occurrences
    left to right so that the rightmost of each group wins; repeatable ones accumulate."""
    last = {s.option: s for s in seen if not s.option.repeatable}
    checked = {opt: _convert_option(opt, last[opt].raw) for opt in spec.options if opt in last}
    winners: dict[str, OptionSpec] = {}
    for s in seen:
        opt = s.option
        if opt.repeatable:
            values[opt.dest].append(_convert_option(opt, s.raw))
        else:
            # An earlier occurrence of the same option is always overridden later on, so
            # (as in DCMTK) only the last one's value is checked and used.
            values[opt.dest] = checked[opt]
        winners[opt.dest] = opt
    return winners


def _convert_params(spec: CommandSpec, params: list[str]) -> dict[str, Any]:
    """Parameter count, then values ("Invalid parameter value 0 (underflow)")."""
    mandatory = [p for p in spec.params if not p.optional]
    if len(params) < len(mandatory):
        raise OptionError(f"Missing parameter {spec.params[len(params)].name}")
    variadic = any(p.variadic for p in spec.params)
    if not variadic and len(params) > len(spec.params):
        raise OptionError("Too many parameters")
    values: dict[str, Any] = {}
    remaining = list(params)
    for p in spec.params:
        taken = remaining if p.variadic else remaining[:1]
        remaining = [] if p.variadic else remaining[1:]
        converted = []
        for raw in taken:
            try:
                converted.append(convert_value(p.type, raw))
            except _BadValue as bad:
                detail = "" if bad.kind == "invalid" else f" ({bad.kind})"
                raise OptionError(f"Invalid parameter value {raw}{detail}") from None
        if p.variadic:
            values[p.key] = converted
        elif converted:
            values[p.key] = converted[0]
    return values


def parse(spec: CommandSpec, argv: Sequence[str]) -> ParsedArgs:
    """Parse `argv` (without the program name) by DCMTK's rules; raises `OptionError`.

    When `--help` or `--version` is given (or nothing at all while a parameter is
    mandatory), the result has `help`/`version` set and nothing else is checked: the caller
    prints `format_help(spec)` or its version text and exits 0.
    """
    spec.lookup  # noqa: B018 -- checks the table once (duplicate spellings, clashes)
    args = expand_command_files(argv)
    seen, params, expanded = _tokenize(spec, args)
    values = spec.default_values()
    if not args and any(not p.optional for p in spec.params):
        values["help"] = True
        return ParsedArgs(values, expanded=expanded)
    exclusive = [s.option for s in seen if s.option.exclusive]
    if exclusive:
        for opt in exclusive:
            values[opt.dest] = opt.const
        return ParsedArgs(values, expanded=expanded)
    for s in seen:
        if s.option.unsupported:
            raise OptionError(s.option.unsupported)
    values.update(_convert_params(spec, params))
    winners = _apply_options(spec, seen, values)
    parsed = ParsedArgs(values, winners, expanded)
    for check in spec.checks:
        check(parsed)
    return parsed


# --- help and --arguments --------------------------------------------------------------------


def _indented(first: str, text: str, column: int) -> list[str]:
    """`first` followed by `text`, whose further lines start at `column`."""
    lines = text.split("\n")
    return [first + lines[0]] + [" " * column + line for line in lines[1:]]


def _section_lines(spec: CommandSpec, options: list[OptionSpec], indent: int) -> list[str]:
    """One (sub)group's options in DCMTK's columns: short, long, then value and help text."""
    short_w = max([spec.short_column + 4 - indent] + [len(o.short) for o in options])
    long_w = max([spec.long_column] + [len(o.long) for o in options])
    column = indent + short_w + 2 + long_w + 2
    lines: list[str] = []
    for opt in options:
        head = " " * indent + opt.short.ljust(short_w) + "  " + opt.long.ljust(long_w) + "  "
        text = f"{opt.metavar}\n{opt.help}" if opt.metavar else opt.help
        lines += _indented(head, text, column)
    return lines


def _option_lines(spec: CommandSpec) -> list[str]:
    lines: list[str] = []
    group = subgroup = None
    section: list[OptionSpec] = []

    def flush() -> None:
        if section:
            lines.extend(_section_lines(spec, section, 4 if subgroup else 2))
            section.clear()

    for opt in spec.options:
        if opt.group != group:
            flush()
            group, subgroup = opt.group, None
            lines.append(f"{group}:")
        if opt.subgroup != subgroup:
            flush()
            subgroup = opt.subgroup
            if subgroup:
                lines.append(f"  {subgroup}:")
        section.append(opt)
    flush()
    return lines


def format_help(spec: CommandSpec, header: str = "") -> str:
    """The usage text of OFConsoleApplication::printUsage: name, usage, parameters, options.

    `header` (e.g. a version line) comes first, followed by an empty line, as DCMTK's
    "$dcmtk: movescu v3.6.7 ... $" does.
    """
    lines = [header, ""] if header else []
    lines += [f"{spec.name}: {spec.description}", f"usage: {spec.usage}"]
    params = [p for p in spec.params if p.help]
    if params:
        # DCMTK's parameter column: LONGCOL + SHORTCOL + 4, so descriptions align with options.
        width = max([spec.long_column + spec.short_column + 4] + [len(p.name) for p in params])
        lines += ["", "parameters:"]
        for p in params:
            lines += _indented(f"  {p.name.ljust(width)}  ", p.help, width + 4)
    if spec.options:
        lines += ["", *_option_lines(spec)]
    return "\n".join(lines) + "\n\n"


def format_arguments(expanded: Sequence[str], program: str) -> str:
    """`--arguments`: DCMTK 3.6.7 logs "calling 'movescu' with 7 arguments: '--arguments' ..."
    (each argument quoted and followed by a space; options in their long spelling).

    DCMTK up to 3.6.2 printed "expanded command line to N arguments:" and the quoted list on
    the next line instead; 3.6.7 is what the installed tools do.
    """
    quoted = "".join(f"'{arg}' " for arg in expanded)
    return f"calling '{program}' with {len(expanded)} arguments: {quoted}"


def __getattr__(name: str) -> Any:
    """`MOVESCU` and `STORESCP` live in `aiomove.options_specs` (which imports this module);
    they are also reachable from here."""
    if name in ("MOVESCU", "STORESCP"):
        from aiomove import options_specs

        return getattr(options_specs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
