"""Lean stand-ins for collections.namedtuple, functools.cached_property and functools.lru_cache.

tcpd starts once per connection, and importing `collections` and `functools` (which imports `collections`)
costs it about 3 ms, a sixth of its whole run; namedtuple also compiles code for every class it makes.
These do the same jobs with nothing but builtins:
- `record(name, fields, defaults)`: a tuple subclass with named read-only fields, keyword arguments,
  defaults for the last fields and a namedtuple-style repr; equality and hashing are the tuple's.
- `cached_property`: computed on first access, then stored in the instance's __dict__ (the same
  non-data-descriptor behaviour as functools', without its lock-free re-entrancy checks).
- `small_cache(size)`: memoises a function of hashable arguments, keeping the `size` newest results,
  safe from several threads; `cache_clear()` and `__wrapped__` as lru_cache has them.
"""

from __future__ import annotations

from _operator import itemgetter
from _thread import allocate_lock


def record(name: str, fields: str, defaults: tuple = ()) -> type:
    names = tuple(fields.split())
    size = len(names)
    first_default = size - len(defaults)

    def __new__(cls, *args, **kwargs):  # noqa: N807 (it is __new__)
        if len(args) != size or kwargs:
            if not kwargs and first_default <= len(args) < size:  # trailing defaults: the common case
                args += defaults[len(args) - first_default:]
            else:
                args = _complete(name, names, defaults, first_default, args, kwargs)
        return tuple.__new__(cls, args)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={v!r}' for n, v in zip(names, self, strict=True))})"

    namespace = {"__slots__": (), "__new__": __new__, "__repr__": __repr__, "_fields": names,
                 "__getnewargs__": lambda self: tuple(self)}
    for position, field in enumerate(names):
        namespace[field] = property(itemgetter(position), doc=f"field {position}: {field}")
    return type(name, (tuple,), namespace)


def _complete(name: str, names: tuple, defaults: tuple, first_default: int, args: tuple,
              kwargs: dict) -> tuple:
    if len(args) > len(names):
        raise TypeError(f"{name}() takes {len(names)} arguments, got {len(args)}")
    values = list(args)
    for position in range(len(args), len(names)):
        field = names[position]
        if field in kwargs:
            values.append(kwargs.pop(field))
        elif position >= first_default:
            values.append(defaults[position - first_default])
        else:
            raise TypeError(f"{name}() missing argument {field!r}")
    if kwargs:
        raise TypeError(f"{name}() got unexpected or repeated arguments {sorted(kwargs)}")
    return tuple(values)


class cached_property:  # noqa: N801 (named after the functools one it stands in for)
    def __init__(self, compute) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


def small_cache(size: int):
    def decorate(function):
        results: dict = {}
        lock = allocate_lock()  # the library calls it from many threads; a lookup alone needs no lock

        def cached(*args):
            try:
                return results[args]
            except KeyError:
                pass
            value = function(*args)  # two threads may both compute it: same value, no harm
            with lock:
                if len(results) >= size:
                    results.pop(next(iter(results)), None)  # the oldest (dicts keep insertion order)
                results[args] = value
            return value

        cached.cache_clear = results.clear
        cached.__wrapped__ = function
        cached.__doc__ = function.__doc__
        cached.__name__ = function.__name__
        return cached

    return decorate
