"""Sub-linear first match over long runs of plain address rules (the shape fail2ban and DenyHosts write).

Contract: `compile_table(entries)` turns parsed entries into "table items": the entries themselves, except
that every run of at least MIN_RUN consecutive *plain* rules with the same daemon pattern becomes one `Run`.
A plain rule has one daemon pattern (no `@host`, no EXCEPT), no options, and a client list of IPv4
addresses in canonical dotted form and `a.b.c.d/len` or `a.b.c.d/m.m.m.m` networks only. `Run.first_match`
answers, for a client address, the position of the first rule of the run that matches, with dictionary
lookups instead of a scan — and with exactly the reference's semantics, which for such patterns need no
name lookup: an address pattern is a string comparison (so only canonical patterns are indexed by value),
a network is `(address & mask) == net` with the address read as inet_addr does (octal parts included).
`Run.rule(position)` rebuilds the plain Rule there, for the options and the log. Pure data throughout:
a Run is built from tuples, dicts and ints, and marshals as such (pywrap.tablecache).
"""

from __future__ import annotations

from pywrap.numeric import INADDR_NONE, atoi, dot_quad_addr, strip_mapped
from pywrap.rules import PatternList, Rule

MIN_RUN = 16


def canonical_quad(text: str) -> int | None:
    """The value of a dotted quad written canonically (no leading zeros, each part 0-255), else None."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not part.isdigit() or not part.isascii() or (len(part) > 1 and part[0] == "0") or int(part) > 255:
            return None
        value = value << 8 | int(part)
    return value


def _network(token: str) -> tuple[int, int] | None | bool:
    """(mask, net) of an indexable net/mask token; False if it can never match; None if not plain."""
    net_text, _, mask_text = token.partition("/")
    net = canonical_quad(net_text)
    if net is None:
        return None
    if canonical_quad(mask_text) is not None:
        mask = dot_quad_addr(mask_text)
        if mask == INADDR_NONE:
            return False
    elif mask_text.isdigit() and mask_text.isascii():
        bits = atoi(mask_text)
        if not 1 <= bits <= 32:
            return False
        mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    else:
        return None
    return mask, net


def plain_shape(entry) -> tuple[str, list[int], list[tuple[int, int]]] | None:
    """(daemon pattern, exact addresses, (mask, net) networks) of a plain rule, else None."""
    if not isinstance(entry, Rule) or entry.options is not None:
        return None
    daemons, clients = entry.daemons, entry.clients
    if len(daemons.patterns) != 1 or daemons.exceptions is not None or clients.exceptions is not None:
        return None
    daemon = daemons.patterns[0]
    if "@" in daemon[1:] or "[" in daemon or daemon.upper() == "EXCEPT" or not clients.patterns:
        return None
    exact, nets = [], []
    for token in clients.patterns:
        if "/" in token:
            network = _network(token)
            if network is None:
                return None
            if network is not False:
                nets.append(network)
        else:
            value = canonical_quad(token)
            if value is None:
                return None
            exact.append(value)
    return daemon, exact, nets


class Run:
    """Consecutive plain rules with one daemon pattern, indexed by address and by network."""

    __slots__ = ("daemon", "file", "lines", "tokens", "exact", "nets")

    def __init__(self, daemon: str, file: str, lines: tuple, tokens: tuple, exact: dict, nets: dict) -> None:
        self.daemon = daemon      # the daemon pattern every rule of the run has
        self.file = file
        self.lines = lines        # line number of each rule
        self.tokens = tokens      # client patterns of each rule
        self.exact = exact        # address value -> first position
        self.nets = nets          # mask -> {net -> first position}

    def __len__(self) -> int:
        return len(self.lines)

    def first_match(self, address: str) -> int | None:
        text = strip_mapped(address)
        found = None
        value = canonical_quad(text)
        if value is not None:
            found = self.exact.get(value)
        if self.nets:
            loose = dot_quad_addr(text)  # the matcher reads the address the way inet_addr does
            if loose != INADDR_NONE:
                for mask, table in self.nets.items():
                    position = table.get(loose & mask)
                    if position is not None and (found is None or position < found):
                        found = position
        return found

    def rule(self, position: int) -> Rule:
        return Rule(self.file, self.lines[position], PatternList((self.daemon,)),
                    PatternList(self.tokens[position]), None)

    def to_data(self) -> tuple:
        return (self.daemon, self.file, self.lines, self.tokens, self.exact, self.nets)


def _build_run(rules: list, shapes: list) -> Run:
    exact: dict[int, int] = {}
    nets: dict[int, dict[int, int]] = {}
    for position, (_, addresses, networks) in enumerate(shapes):
        for value in addresses:
            exact.setdefault(value, position)
        for mask, net in networks:
            nets.setdefault(mask, {}).setdefault(net, position)
    return Run(shapes[0][0], rules[0].file, tuple(r.line for r in rules),
               tuple(tuple(r.clients.patterns) for r in rules), exact, nets)


def compile_table(entries: tuple) -> tuple:
    items: list = []
    pending: list = []
    shapes: list = []

    def flush() -> None:
        if len(pending) >= MIN_RUN:
            items.append(_build_run(pending, shapes))
        else:
            items.extend(pending)
        pending.clear()
        shapes.clear()

    for entry in entries:
        shape = plain_shape(entry)
        if shape is None:
            flush()
            items.append(entry)
            continue
        if shapes and (shape[0] != shapes[0][0] or entry.file != pending[0].file):
            flush()
        pending.append(entry)
        shapes.append(shape)
    flush()
    return tuple(items)
