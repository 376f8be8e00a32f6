"""Sub-linear first match over long runs of plain rules (the shape fail2ban, DenyHosts and block lists write).

Contract: `compile_table(entries)` turns parsed entries into "table items": the entries themselves, except
that every run of at least MIN_RUN consecutive *plain* rules with the same daemon pattern becomes one `Run`.
A plain rule has one daemon pattern (no `@host`, no EXCEPT), no options, and a client list of
- IPv4 addresses in canonical dotted form, and `a.b.c.d/len` or `a.b.c.d/m.m.m.m` networks;
- "words": host names (`mail.example.com`), domains (`.example.com`) and prefixes (`192.168.`), made of
  letters, digits, `-`, `_` and dots, other than the keywords ALL, KNOWN and LOCAL.
`Run.first_match(endpoint, evaluate)` answers the position of the first rule of the run that matches the
client, with binary searches instead of a scan, and with exactly the reference's semantics: an address
pattern is a string comparison (so only canonical patterns are indexed by value), a network is
`(address & mask) == net` with the address read as inet_addr does (octal parts included), a word is
compared with the address and — unless it holds only digits, dots and slashes — with the host name, ignoring
ASCII case. The host name is asked for exactly when, and in the rule where, the scan would have asked for it
(`evaluate` checks that one rule the ordinary way). `Run.rule(position)` rebuilds the plain Rule
there, for the options and the log. Pure data throughout: a Run is built from strings and uint32 arrays,
and marshals as bytes (pywrap.tablecache), which may check its arrays lazily and raise DamagedData.
"""

from __future__ import annotations

from bisect import bisect_left

from pywrap.lean import record
from pywrap.numeric import INADDR_NONE, atoi, dot_quad_addr, strip_mapped
from pywrap.patterns import NUMERIC_CHARS  # the reference's NOT_INADDR: such patterns never see the name
from pywrap.rules import PatternList, Rule
from pywrap.text import fold

MIN_RUN = 16
NONE = 0xFFFFFFFF  # "no rule" in a uint32 position array
WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
KEYWORDS = frozenset(("all", "known", "local"))
KEY_MAX = 2046  # the longest word key: a pattern is part of one logical table line (pywrap.tables)


class AddressLine(record("AddressLine", "file line daemon token value")):
    """A rule line that is only `daemon: a.b.c.d` with a canonical address (`value`, its number): the
    bulk of what fail2ban and DenyHosts write, read by pywrap.plainrules and carried this small way into
    compile_table, which builds a Rule from it only when it does not end up in a Run."""

    __slots__ = ()

    def rule(self) -> Rule:
        return Rule(self.file, self.line, PatternList((self.daemon,)), PatternList((self.token,)), None)


class DamagedData(Exception):
    """A cached array failed its check while it was being read: the cache must not be trusted."""


def canonical_quad(text: str) -> int | None:
    """The value of a dotted quad written canonically (no leading zeros, each part 0-255), else None."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        # a canonical part has at most 3 digits: a longer one (a client's, of any length) is never given to
        # int(), whose 4300-digit limit would raise where the scan just finds no match
        if len(part) > 3 or not part.isdigit() or not part.isascii() or (len(part) > 1 and part[0] == "0") \
                or int(part) > 255:
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


def _word(token: str) -> str | None:
    """The folded key of a word pattern (exact, `.suffix` or `prefix.`), else None."""
    key = fold(token)
    if not key or not set(key) <= WORD_CHARS or key in KEYWORDS:
        return None
    return key


def plain_shape(entry) -> tuple[str, list[int], list[tuple[int, int]], list[str]] | None:
    """(daemon pattern, exact addresses, (mask, net) networks, word keys) of a plain rule, else None."""
    if not isinstance(entry, Rule) or entry.options is not None:
        return None
    daemons, clients = entry.daemons, entry.clients
    if len(daemons.patterns) != 1 or daemons.exceptions is not None or clients.exceptions is not None:
        return None
    daemon = daemons.patterns[0]
    if "@" in daemon[1:] or "[" in daemon or daemon.upper() == "EXCEPT" or not clients.patterns:
        return None
    exact, nets, words = [], [], []
    for token in clients.patterns:
        if "/" in token:
            network = _network(token)
            if network is None:
                return None
            if network is not False:
                nets.append(network)
            continue
        value = canonical_quad(token)
        if value is not None:
            exact.append(value)
            continue
        key = _word(token)
        if key is None:
            return None
        words.append(key)
    return daemon, exact, nets, words


def _candidates(value: str) -> list[str]:
    """Every word key that matches `value` (already folded): itself as a host name, each prefix ending
    in a dot, each suffix starting with a dot that leaves something before it. Only those of at most
    KEY_MAX characters: longer ones cannot be keys, and all of them would take memory quadratic in the
    length of a client string (5 GB for one of 100,000 dots)."""
    keys = []
    if not value.startswith("."):
        if not value.endswith(".") and len(value) <= KEY_MAX:
            keys.append(value)
        keys.extend(value[:i + 1] for i, c in enumerate(value[:KEY_MAX]) if c == ".")
    first = max(1, len(value) - KEY_MAX)
    keys.extend(value[i:] for i in range(first, len(value)) if value[i] == ".")
    return keys


class Words:
    """Word keys, sorted, with the first rule position that matches through the address and through the
    name. `keys` is one latin-1 blob with `offsets` (one more at the end) so a cached table is mapped,
    not loaded, and a lookup is a binary search."""

    __slots__ = ("keys", "offsets", "by_address", "by_name")

    def __init__(self, keys, offsets, by_address, by_name) -> None:
        self.keys, self.offsets, self.by_address, self.by_name = keys, offsets, by_address, by_name

    def _key(self, i: int) -> bytes:
        return bytes(self.keys[self.offsets[i]:self.offsets[i + 1]])

    def _find(self, key: bytes) -> int | None:
        count = len(self.offsets) - 1
        i = bisect_left(range(count), key, key=self._key)
        return i if i < count and self._key(i) == key else None

    def first(self, value: str, positions) -> int | None:
        found = None
        for key in _candidates(fold(strip_mapped(value))):
            try:
                i = self._find(key.encode("latin-1"))
            except UnicodeEncodeError:  # no pattern holds such a character
                continue
            if i is not None and positions[i] != NONE and (found is None or positions[i] < found):
                found = positions[i]
        return found

    @classmethod
    def build(cls, by_address: dict[str, int], by_name: dict[str, int]) -> Words:
        from array import array
        ordered = sorted(by_address, key=lambda k: k.encode("latin-1"))
        offsets = array("I", [0])
        for key in ordered:
            offsets.append(offsets[-1] + len(key))
        return cls("".join(ordered).encode("latin-1"), offsets, array("I", (by_address[k] for k in ordered)),
                   array("I", (by_name.get(k, NONE) for k in ordered)))


class Run:
    """Consecutive plain rules with one daemon pattern, indexed by address, by network and by word.

    Everything is kept in flat arrays (sorted keys and their first positions, line numbers, the rules'
    client patterns as one string), so that a cached Run loads with a few memory copies, however many
    rules it holds, and a lookup is a binary search."""

    __slots__ = ("daemon", "file", "lines", "patterns", "starts", "exact", "nets", "words", "first_named")

    def __init__(self, daemon: str, file: str, lines, patterns, starts, exact, nets,
                 words: Words | None = None, first_named: int = -1) -> None:
        self.daemon = daemon      # the daemon pattern every rule of the run has
        self.file = file
        self.lines = lines        # uint32 sequence: line number of each rule
        self.patterns = patterns  # every rule's client patterns, blank-separated, as latin-1 bytes
        self.starts = starts      # uint32 sequence: where each rule's patterns start (one more at the end)
        self.exact = exact        # (sorted address values, first position of each)
        self.nets = nets          # ((mask, sorted nets, first position of each), ...)
        self.words = words        # Words, if any rule has a word pattern
        self.first_named = first_named  # the first rule with a pattern that is compared with the name, or -1

    def __len__(self) -> int:
        return len(self.lines)

    def first_match(self, client, evaluate) -> int | None:
        """`client`: the Endpoint; `evaluate(rule)`: does this rule match, asked the ordinary way."""
        found = self._by_address(client.address)
        named = self.first_named
        if named < 0 or (found is not None and found < named):
            return found  # the scan matches before any pattern that would need the name
        # The scan reaches this rule and asks for the name here (unless a pattern before the word matches
        # first): evaluate it the ordinary way, so the lookup happens, and reports, in this rule's context.
        if evaluate(self.rule(named)):
            return named
        by_name = self.words.first(client.name, self.words.by_name)  # known now: no further lookup
        if by_name is not None and (found is None or by_name < found):
            found = by_name
        return found

    def _by_address(self, address: str) -> int | None:
        text = strip_mapped(address)
        candidates = []
        value = canonical_quad(text)
        if value is not None:
            candidates.append(_lookup(self.exact[0], self.exact[1], value))
        if self.nets:
            loose = dot_quad_addr(text)  # the matcher reads the address the way inet_addr does
            if loose != INADDR_NONE:
                for mask, keys, positions in self.nets:
                    candidates.append(_lookup(keys, positions, loose & mask))
        if self.words is not None:
            candidates.append(self.words.first(address, self.words.by_address))
        return min((c for c in candidates if c is not None), default=None)

    def rule(self, position: int) -> Rule:
        piece = bytes(self.patterns[self.starts[position]:self.starts[position + 1]])
        tokens = tuple(piece.decode("latin-1").split())
        return Rule(self.file, self.lines[position], PatternList((self.daemon,)), PatternList(tokens), None)

    def to_data(self, blobs: list[bytes]) -> tuple:
        """Plain data naming its arrays by their place in `blobs`, so the cache keeps the arrays outside
        the marshalled part and maps them instead of reading them."""

        def put(data) -> int:
            blobs.append(bytes(data))
            return len(blobs) - 1

        words = None
        if self.words is not None:
            w = self.words
            words = (put(w.keys), put(w.offsets), put(w.by_address), put(w.by_name))
        return (self.daemon, self.file, put(self.lines), put(self.patterns), put(self.starts),
                (put(self.exact[0]), put(self.exact[1])),
                tuple((mask, put(keys), put(positions)) for mask, keys, positions in self.nets),
                words, self.first_named)

    @classmethod
    def from_data(cls, data, blobs: list) -> Run:
        """The inverse of to_data; `blobs` are buffers (memory-mapped views in the cache) or objects with
        `u32()` and slicing that check what they hand out."""
        daemon, file, lines, patterns, starts, exact, nets, words, first_named = data
        if not (isinstance(daemon, str) and isinstance(file, str) and isinstance(first_named, int)):
            raise ValueError("bad run")
        if words is not None:
            keys, offsets, by_address, by_name = words
            words = Words(blobs[keys], _u32(blobs[offsets]), _u32(blobs[by_address]), _u32(blobs[by_name]))
        return cls(daemon, file, _u32(blobs[lines]), blobs[patterns], _u32(blobs[starts]),
                   (_u32(blobs[exact[0]]), _u32(blobs[exact[1]])),
                   tuple((int(mask), _u32(blobs[keys]), _u32(blobs[positions]))
                         for mask, keys, positions in nets), words, first_named)


def _u32(blob):
    """A uint32 view of a buffer without copying (a cast memoryview supports len, indexing and bisect)."""
    if hasattr(blob, "u32"):
        return blob.u32()
    view = memoryview(blob)
    return view.cast("B").cast("I") if view.format != "I" else view


def _lookup(keys, positions, value: int) -> int | None:
    i = bisect_left(keys, value)
    return positions[i] if i < len(keys) and keys[i] == value else None


def _sorted_arrays(first: dict[int, int]) -> tuple:
    from array import array
    keys = array("I", sorted(first))
    return keys, array("I", map(first.__getitem__, keys))


def _build_run(rules: list, shapes: list) -> Run:
    # only when building: array imports collections, which tcpd does not need
    from array import array
    from itertools import accumulate
    from operator import itemgetter

    exact: dict[int, int] = {}
    nets: dict[int, dict[int, int]] = {}
    by_address: dict[str, int] = {}
    by_name: dict[str, int] = {}
    first_named = -1
    texts: list[str] = []  # each rule's client patterns, blank-separated
    for position, (rule, (_, addresses, networks, words)) in enumerate(zip(rules, shapes, strict=True)):
        if type(rule) is AddressLine:  # the bulk of a huge table: kept to the least work
            exact.setdefault(rule[4], position)
            texts.append(rule[3])
            continue
        for value in addresses:
            exact.setdefault(value, position)
        for mask, net in networks:
            nets.setdefault(mask, {}).setdefault(net, position)
        for key in words:
            by_address.setdefault(key, position)
            if not set(key) <= NUMERIC_CHARS:
                by_name.setdefault(key, position)
                if first_named < 0:
                    first_named = position
        texts.append(" ".join(rule.clients.patterns))
    # one latin-1 blob, each rule's text followed by a blank; starts[i] is where rule i's text begins
    patterns = (" ".join(texts) + " ").encode("latin-1")
    starts = array("I", accumulate(map((1).__add__, map(len, texts)), initial=0))
    lines = array("I", map(itemgetter(1), rules))  # the line number is field 1 of a Rule and an AddressLine
    words_index = Words.build(by_address, by_name) if by_address else None
    networks = tuple((mask, *_sorted_arrays(table)) for mask, table in nets.items())
    return Run(shapes[0][0], rules[0].file, lines, patterns, starts, _sorted_arrays(exact), networks,
               words_index, first_named)


def compile_table(entries: tuple) -> tuple:
    """Entries (Rules, LineProblems and AddressLines) -> table items (Rules, LineProblems and Runs)."""
    items: list = []
    pending: list = []
    shapes: list = []

    def flush() -> None:
        if len(pending) >= MIN_RUN:
            items.append(_build_run(pending, shapes))
        else:
            items.extend(e.rule() if type(e) is AddressLine else e for e in pending)
        pending.clear()
        shapes.clear()

    for entry in entries:
        shape = (entry.daemon, (), (), ()) if type(entry) is AddressLine else plain_shape(entry)
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
