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
a Run is built from strings and uint32 arrays, and marshals as bytes (pywrap.tablecache).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

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
    """Consecutive plain rules with one daemon pattern, indexed by address and by network.

    Everything is kept in flat arrays (sorted keys and their first positions, line numbers, the rules'
    client patterns as one string), so that a cached Run loads with a few memory copies, however many
    rules it holds, and a lookup is a binary search."""

    __slots__ = ("daemon", "file", "lines", "patterns", "starts", "exact", "nets")

    def __init__(self, daemon: str, file: str, lines, patterns: bytes, starts, exact, nets) -> None:
        self.daemon = daemon      # the daemon pattern every rule of the run has
        self.file = file
        self.lines = lines        # uint32 sequence: line number of each rule
        self.patterns = patterns  # every rule's client patterns, blank-separated, as latin-1 bytes
        self.starts = starts      # uint32 sequence: where each rule's patterns start (one more at the end)
        self.exact = exact        # (sorted address values, first position of each)
        self.nets = nets          # ((mask, sorted nets, first position of each), ...)

    def __len__(self) -> int:
        return len(self.lines)

    def first_match(self, address: str) -> int | None:
        text = strip_mapped(address)
        found = None
        value = canonical_quad(text)
        if value is not None:
            found = _lookup(self.exact[0], self.exact[1], value)
        if self.nets:
            loose = dot_quad_addr(text)  # the matcher reads the address the way inet_addr does
            if loose != INADDR_NONE:
                for mask, keys, positions in self.nets:
                    position = _lookup(keys, positions, loose & mask)
                    if position is not None and (found is None or position < found):
                        found = position
        return found

    def rule(self, position: int) -> Rule:
        piece = bytes(self.patterns[self.starts[position]:self.starts[position + 1]])
        tokens = tuple(piece.decode("latin-1").split())
        return Rule(self.file, self.lines[position], PatternList((self.daemon,)), PatternList(tokens), None)

    def to_data(self, blobs: list[tuple[bytes, bool]]) -> tuple:
        """Plain data naming its arrays by their place in `blobs` ((bytes, checked) pairs), so the cache
        keeps the arrays outside the marshalled part and maps them instead of reading them. The index
        arrays, which decide whether a rule matches, are checked on load; line numbers and patterns, which
        only say which line it was, are not (a checksum over them is the largest cost of a huge table)."""

        def put(data, vital: bool = True) -> int:
            blobs.append((bytes(data), vital))
            return len(blobs) - 1

        return (self.daemon, self.file, put(self.lines, vital=False), put(self.patterns, vital=False),
                put(self.starts, vital=False),
                (put(self.exact[0]), put(self.exact[1])),
                tuple((mask, put(keys), put(positions)) for mask, keys, positions in self.nets))

    @classmethod
    def from_data(cls, data, blobs: list) -> Run:
        """The inverse of to_data; `blobs` are buffers (memory-mapped views in the cache)."""
        daemon, file, lines, patterns, starts, exact, nets = data
        if not (isinstance(daemon, str) and isinstance(file, str)):
            raise ValueError("bad run")
        return cls(daemon, file, _u32(blobs[lines]), blobs[patterns], _u32(blobs[starts]),
                   (_u32(blobs[exact[0]]), _u32(blobs[exact[1]])),
                   tuple((int(mask), _u32(blobs[keys]), _u32(blobs[positions]))
                         for mask, keys, positions in nets))


def _u32(blob):
    """A uint32 view of a buffer, without copying (a cast memoryview supports len, indexing and bisect)."""
    view = memoryview(blob)
    return view.cast("B").cast("I") if view.format != "I" else view


def _lookup(keys, positions, value: int) -> int | None:
    i = bisect_left(keys, value)
    return positions[i] if i < len(keys) and keys[i] == value else None


def _sorted_arrays(first: dict[int, int]) -> tuple:
    keys = array("I", sorted(first))
    return keys, array("I", (first[k] for k in keys))


def _build_run(rules: list, shapes: list) -> Run:
    exact: dict[int, int] = {}
    nets: dict[int, dict[int, int]] = {}
    starts = array("I", [0])
    pieces: list[bytes] = []
    size = 0
    for position, (rule, (_, addresses, networks)) in enumerate(zip(rules, shapes, strict=True)):
        for value in addresses:
            exact.setdefault(value, position)
        for mask, net in networks:
            nets.setdefault(mask, {}).setdefault(net, position)
        piece = (" ".join(rule.clients.patterns) + " ").encode("latin-1")
        pieces.append(piece)
        size += len(piece)
        starts.append(size)
    return Run(shapes[0][0], rules[0].file, array("I", (r.line for r in rules)), b"".join(pieces), starts,
               _sorted_arrays(exact), tuple((mask, *_sorted_arrays(table)) for mask, table in nets.items()))


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
