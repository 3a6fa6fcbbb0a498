"""How deeply nested a JSON value or a custom schema may be, checked without recursion.

Python ``jsonschema`` (and ``json.dumps``, ``copy.deepcopy``) recurse once or more per level
of nesting, so a value or schema nested a few hundred levels deep raises ``RecursionError``
(an unhandled exception, in grand-challenge too) somewhere inside validation. The depth is
therefore measured first, by an explicit stack, and anything deeper than
``MAX_NESTING_DEPTH`` is refused with a message naming the depth, the place and the limit.

The limit is far above what legitimate data needs: the deepest built-in kind schema document
nests 8 levels (vega-lite's 12), grand-challenge's example values at most 6 (Multiple lines:
object > lines > line > path_point_lists > list > point), and a custom schema spends two
levels per schema level (``properties`` > name > subschema).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

#: Containers (objects and arrays) inside one another, the outermost counting as 1.
MAX_NESTING_DEPTH = 64


@dataclass(frozen=True)
class Nesting:
    """The depth of a JSON document and the path (keys and indexes) to its deepest point."""

    depth: int
    path: tuple[Any, ...]


def nesting(document: Any, *, stop_after: int | None = None) -> Nesting:
    """Depth of ``document`` (a scalar is 0, ``[]`` and ``{}`` are 1), iteratively.

    ``stop_after``: return as soon as a point deeper than this is found (the first such
    point, not necessarily the deepest), so a hostile document costs no more than needed.
    """
    deepest = Nesting(0, ())
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(document, 0, ())]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            children: Any = node.items()
        elif isinstance(node, (list, tuple)):
            children = enumerate(node)
        else:
            continue
        depth += 1
        if depth > deepest.depth:
            deepest = Nesting(depth, path)
            if stop_after is not None and depth > stop_after:
                return deepest
        for key, child in children:
            if isinstance(child, (dict, list, tuple)):
                stack.append((child, depth, (*path, key)))
    return deepest


def too_deep(document: Any, limit: int = MAX_NESTING_DEPTH) -> Nesting | None:
    """The depth and deepest point of ``document`` when it is nested deeper than ``limit``, else None."""
    if _depth_within(document, limit):
        return None
    return nesting(document)  # only for refused documents: the whole depth and a path, for the message


def _depth_within(document: Any, limit: int) -> bool:
    if type(document) not in _CONTAINERS:
        return True
    try:
        # jsonschema-rs walks a large annotation in a few ms (it does not recurse in Python).
        return _rust_depth_validator(limit)(document)
    except (ValueError, TypeError, OverflowError):
        pass  # not plain JSON data (e.g. a date from YAML): count in Python
    # Level by level with list comprehensions (about 70 ms for 100 000 points).
    level = [document]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return False
        following: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            following += [child for child in children if type(child) in _CONTAINERS]
        level = following
    return True


@functools.lru_cache(maxsize=8)
def _rust_depth_validator(limit: int) -> Callable[[Any], bool]:
    """A schema that admits exactly the documents nested at most ``limit`` deep.

    ``d<k>`` is the schema of a node inside ``k`` containers: its items and properties get
    ``d<k+1>``; the node inside ``limit`` containers may not be a container itself.
    """
    import jsonschema_rs

    definitions: dict[str, Any] = {
        f"d{k}": {"items": {"$ref": f"#/definitions/d{k + 1}"}, "additionalProperties": {"$ref": f"#/definitions/d{k + 1}"}}
        for k in range(limit)
    }
    definitions[f"d{limit}"] = {"not": {"type": ["array", "object"]}}
    schema = {"definitions": definitions, "$ref": "#/definitions/d0"}
    return jsonschema_rs.Draft7Validator(schema, validate_formats=False).is_valid


_CONTAINERS = frozenset({dict, list, tuple})


def depth_message(found: Nesting, what: str, limit: int = MAX_NESTING_DEPTH) -> str:
    """``the value is nested 100 levels deep (at a.b[0]...), more than the limit of 64 levels``."""
    from .values import format_path  # local: values imports this module

    shown = list(found.path[:6])
    place = format_path(shown) + ("..." if len(found.path) > 6 else "")
    where = f" at {place}" if place else ""
    return (
        f"{what} is nested {found.depth} levels deep{where}, more than the limit of {limit} levels "
        "of objects and arrays"
    )
