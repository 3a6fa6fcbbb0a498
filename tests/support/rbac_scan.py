"""What Kubernetes API access the operator's code needs, read from its source (Python ``ast``).

The chart's RBAC test (tests/integration/test_chart.py) compares the rendered ClusterRole and
Roles with what this module computes, so a new API call without a rule, or a rule no code needs,
fails the test. Two parts:

``scan()`` collects facts from operator/component_operator, without importing it:

* Kubernetes client calls. An attribute such as ``core.read_namespaced_pod`` or
  ``objects.patch_namespaced_custom_object_status`` in a module that uses ``client.CoreV1Api``,
  ``client.CustomObjectsApi`` … is looked up in the official client's own source, which names
  the HTTP method and path of every call (``_<method>_serialize``: ``method='GET'``,
  ``resource_path='/api/v1/namespaces/{namespace}/pods/{name}/log'``). The path gives the API
  group, the resource and the subresource (``pods/log``); the method (and ``{name}``) the verb.
  Placeholders such as ``{group}`` and ``{plural}`` of the custom-objects API come from the
  call's arguments: a string, a module constant (``GROUP``), or a parameter of the enclosing
  function, resolved at every call site of that function in the package.
* kopf's needs, from the decorators: every resource with a handler, index, timer or daemon is
  listed and watched; create/update/resume/delete/field handlers write kopf's progress and
  diff-base records (to status with ``StatusProgressStorage``/``StatusDiffBaseStorage``, else to
  annotations); timers, daemons and non-optional delete handlers put a finalizer on the object
  (a patch of the object itself); a handler that touches ``patch.status`` patches the status
  subresource. kopf.event/info/warn/exception post core Events. kopf itself always lists and
  watches CustomResourceDefinitions, posts Events, and lists/watches/patches its peering object
  (``clusterkopfpeerings``, or ``kopfpeerings`` plus ``namespaces`` list/watch when it watches
  only some namespaces). ``settings.admission.managed`` makes kopf create and patch the webhook
  configuration.
* For each need, where it comes from (``module.function``), the call paths that reach it, and
  the ``if`` conditions it sits under.

``required_grants()`` turns those facts into the grants one installation needs, by a short,
explicit policy (see ``CONFINED`` and ``EXCLUDED_GUARDS``).

Run ``python -m tests.support.rbac_scan`` to print the needs and the default grants.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / "operator" / "component_operator"
PACKAGE = "component_operator"


class ScanError(Exception):
    """The scanner met code it cannot read; fix the code or teach the scanner."""


@dataclass(frozen=True)
class Need:
    group: str
    resource: str  # plural, with "/subresource" when there is one
    verb: str
    origin: str  # module.function (or "kopf" for the framework's own needs)
    why: str
    guards: tuple[str, ...] = ()


@dataclass(frozen=True)
class Grant:
    scope: str  # "cluster" (ClusterRole), "release" (Role in the release namespace), "namespace:<ns>"
    group: str
    resource: str
    verb: str
    resource_name: str | None = None  # symbolic: "{webhookSecret}", "{webhookConfiguration}"


@dataclass
class Facts:
    needs: list[Need] = field(default_factory=list)
    #: (resource selector, handler kind, handler id or None, origin) for every kopf handler
    handlers: list[tuple[tuple[str, str], str, str | None, str]] = field(default_factory=list)
    #: origin function -> origins that call it (package functions only)
    callers: dict[str, set[str]] = field(default_factory=dict)
    progress_storage: str = "SmartProgressStorage"
    diffbase_storage: str = "AnnotationsDiffBaseStorage"

    def validate_handlers(self) -> list[tuple[tuple[str, str], str | None, str]]:
        return [(sel, hid, origin) for (sel, kind, hid, origin) in self.handlers if kind == "validate"]


# --------------------------------------------------------------------------------------------
# The official client: method name -> (HTTP method, path, parameter names)


@functools.lru_cache(maxsize=None)
def client_methods(class_name: str) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    from kubernetes import client

    cls = getattr(client, class_name, None)
    if cls is None or not inspect.isclass(cls):
        raise ScanError(f"kubernetes.client has no {class_name}")
    source = Path(inspect.getsourcefile(cls)).read_text()
    found: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for match in re.finditer(r"def _(\w+)_serialize\(.*?method='(\w+)',\s*resource_path='([^']+)'", source, re.S):
        name, method, path = match.groups()
        params = tuple(p for p in inspect.signature(getattr(cls, name)).parameters if p != "self")
        found[name] = (method, path, params)
        found[f"{name}_with_http_info"] = found[name]
        found[f"{name}_without_preload_content"] = found[name]
    if not found:
        raise ScanError(f"no API methods found in the source of kubernetes.client.{class_name}")
    return found


def parse_path(path: str, values: dict[str, str]) -> tuple[str, str, bool]:
    """(group, resource[/subresource], named) of a client path with its placeholders filled."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    elif parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        raise ScanError(f"not a resource path: {path}")
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[1] == "{namespace}":
        rest = rest[2:]

    def fill(part: str) -> str:
        if part.startswith("{") and part.endswith("}"):
            key = part[1:-1]
            if key in ("name", "namespace"):
                return part
            if key not in values:
                raise ScanError(f"{path}: no value for {part}")
            return values[key]
        return part

    group = fill(group)
    rest = [fill(p) for p in rest]
    resource, named = rest[0], len(rest) >= 2 and rest[1] == "{name}"
    if len(rest) >= 3:
        resource = f"{resource}/{rest[2]}"
    return group, resource, named


def verb_of(method: str, named: bool, watch: bool) -> str:
    if method == "GET":
        return "get" if named else ("watch" if watch else "list")
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}[method]


# --------------------------------------------------------------------------------------------
# The package's source


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    parents: dict[ast.AST, ast.AST]
    imports: dict[str, str]  # local name -> "module" or "module.attr"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


#: Code that runs in the user's own process with the user's kubeconfig, never in the operator:
#: the batch runner and ``component-operator batch`` (their calls need the user's RBAC, not the chart's).
CLIENT_SIDE = ("component_operator.batch",)


def load_modules(package_dir: Path = PACKAGE_DIR) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for path in sorted(package_dir.rglob("*.py")):
        name = _module_name(path)
        if any(name == p or name.startswith(p + ".") for p in CLIENT_SIDE):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        imports: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _resolve_relative(name, path.name == "__init__.py", node.level, node.module) if node.level else (node.module or "")
                for alias in node.names:
                    imports[alias.asname or alias.name] = f"{base}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    imports[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        modules[name] = Module(name, path, tree, parents, imports)
    return modules


def _enclosing_function(mod: Module, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The outermost function (or method) around ``node``; nested functions count as their parent."""
    found = None
    while node in mod.parents:
        node = mod.parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found = node
    return found


def _qualname(mod: Module, fn: ast.AST | None) -> str:
    if fn is None:
        return f"{mod.name}.<module>"
    names = [fn.name]
    node = fn
    while node in mod.parents:
        node = mod.parents[node]
        if isinstance(node, ast.ClassDef):
            names.append(node.name)
    return f"{mod.name}." + ".".join(reversed(names))


def _guards(mod: Module, node: ast.AST) -> tuple[str, ...]:
    """The ``if`` conditions that must hold for ``node`` to run (innermost last)."""
    guards: list[str] = []
    child = node
    while child in mod.parents:
        parent = mod.parents[child]
        if isinstance(parent, ast.If):
            test = ast.unparse(parent.test)
            if child in parent.body:
                guards.append(test)
            elif child in parent.orelse:
                guards.append(f"not ({test})")
        child = parent
    return tuple(reversed(guards))


def _constant(modules: dict[str, Module], module: str, name: str, depth: int = 0) -> str | None:
    """The string value of a module-level constant, following ``from x import NAME``."""
    if depth > 5 or module not in modules:
        return None
    mod = modules[module]
    for node in mod.tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
            return None
    target = mod.imports.get(name)
    if target and target.rsplit(".", 1)[-1] == name:
        return _constant(modules, target.rsplit(".", 1)[0], name, depth + 1)
    return None


class Scanner:
    def __init__(self, modules: dict[str, Module]):
        self.modules = modules
        self.facts = Facts()
        self.functions: dict[str, tuple[Module, ast.AST]] = {}
        for mod in modules.values():
            for node in ast.walk(mod.tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.functions[_qualname(mod, node)] = (mod, node)
        self.calls = self._call_sites()

    # -- the package's call graph ------------------------------------------------------------

    def _target_of(self, mod: Module, func: ast.expr) -> str | None:
        """The package function a call expression refers to, if any."""
        if isinstance(func, ast.Name):
            local = f"{mod.name}.{func.id}"
            if local in self.functions:
                return local
            imported = mod.imports.get(func.id)
            return imported if imported in self.functions else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            base = mod.imports.get(func.value.id)
            if base and f"{base}.{func.attr}" in self.functions:
                return f"{base}.{func.attr}"
        return None

    def _call_sites(self) -> dict[str, list[tuple[Module, ast.Call, str]]]:
        sites: dict[str, list[tuple[Module, ast.Call, str]]] = {}
        for mod in self.modules.values():
            for node in ast.walk(mod.tree):
                if isinstance(node, ast.Call):
                    target = self._target_of(mod, node.func)
                    if target:
                        caller = _qualname(mod, _enclosing_function(mod, node))
                        sites.setdefault(target, []).append((mod, node, caller))
                        self.facts.callers.setdefault(target, set()).add(caller)
        return sites

    # -- argument values ---------------------------------------------------------------------

    def _values(self, mod: Module, expr: ast.expr, fn: ast.AST | None, depth: int = 0) -> set[str]:
        """Every string ``expr`` can be: a literal, a constant, or a parameter resolved at call sites."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.Name):
            if fn is not None:
                params = [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs]
                if expr.id in params:
                    return self._parameter_values(mod, fn, expr.id, depth)
            value = _constant(self.modules, mod.name, expr.id)
            if value is not None:
                return {value}
        where = f"{mod.path.relative_to(REPO)}:{expr.lineno}"
        raise ScanError(f"{where}: cannot tell the value of {ast.unparse(expr)!r}")

    def _parameter_values(self, mod: Module, fn: ast.AST, param: str, depth: int) -> set[str]:
        if depth > 3:
            raise ScanError(f"{mod.name}.{fn.name}: parameter {param!r} passed through too many calls")
        qual = _qualname(mod, fn)
        positional = [a.arg for a in fn.args.posonlyargs + fn.args.args]
        index = positional.index(param) if param in positional else None
        values: set[str] = set()
        sites = self.calls.get(qual, [])
        if not sites:
            raise ScanError(f"{qual}: parameter {param!r} has no call site in the package to take it from")
        for site_mod, call, _caller in sites:
            arg = next((k.value for k in call.keywords if k.arg == param), None)
            if arg is None and index is not None and index < len(call.args):
                arg = call.args[index]
            if arg is None:
                raise ScanError(f"{site_mod.path.relative_to(REPO)}:{call.lineno}: {qual}() without {param!r}")
            values |= self._values(site_mod, arg, _enclosing_function(site_mod, call), depth + 1)
        return values

    # -- Kubernetes client calls ---------------------------------------------------------------

    def _api_classes(self, mod: Module) -> list[str]:
        names = set()
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Attribute) and re.fullmatch(r"[A-Z]\w*Api", node.attr):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and re.fullmatch(r"[A-Z]\w*Api", node.id):
                names.add(node.id)
        return sorted(n for n in names if n != "ApiClient")

    def scan_client_calls(self) -> None:
        for mod in self.modules.values():
            classes = self._api_classes(mod)
            if not classes:
                continue
            table: dict[str, tuple[str, str, tuple[str, ...]]] = {}
            for cls in classes:
                table.update(client_methods(cls))
            for node in ast.walk(mod.tree):
                if isinstance(node, ast.Attribute) and node.attr in table:
                    self._client_call(mod, node, *table[node.attr])

    def _client_call(self, mod: Module, node: ast.Attribute, method: str, path: str, params: tuple[str, ...]) -> None:
        parent = mod.parents.get(node)
        args: list[ast.expr] = []
        keywords: list[ast.keyword] = []
        if isinstance(parent, ast.Call) and parent.func is node:
            args, keywords = list(parent.args), list(parent.keywords)
        elif isinstance(parent, ast.Call) and node in parent.args:
            args = list(parent.args[parent.args.index(node) + 1 :])
            keywords = list(parent.keywords)
        fn = _enclosing_function(mod, node)
        placeholders = [p[1:-1] for p in re.findall(r"\{\w+\}", path) if p not in ("{name}", "{namespace}")]
        options: list[dict[str, str]] = [{}]
        for key in placeholders:
            expr = next((k.value for k in keywords if k.arg == key), None)
            if expr is None and key in params and params.index(key) < len(args):
                expr = args[params.index(key)]
            if expr is None:
                where = f"{mod.path.relative_to(REPO)}:{node.lineno}"
                raise ScanError(f"{where}: {node.attr} without a readable {key!r} argument")
            options = [{**o, key: v} for o in options for v in sorted(self._values(mod, expr, fn))]
        watch = any(k.arg == "watch" and isinstance(k.value, ast.Constant) and k.value.value for k in keywords)
        origin = _qualname(mod, fn)
        for values in options:
            group, resource, named = parse_path(path, values)
            self.facts.needs.append(Need(group, resource, verb_of(method, named, watch), origin,
                                         f"{node.attr} ({method} {path})", _guards(mod, node)))

    # -- the async calls (adapters.kube._call and KubeHTTP.call) -------------------------------

    HTTP_CALLERS = {"_call", "call", "_stream", "stream"}
    #: The callers that watch (a GET of a collection through them is "watch", not "list").
    WATCHING_CALLERS = {"_stream", "stream"}

    def _templates(self, mod: Module, expr: ast.expr) -> list[str]:
        """The path templates an argument names: a module constant, an entry of a module-level
        dict of them (``CHILD_COLLECTIONS[kind]``: every entry), or ``_path(template, ...)``."""
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "_path" and expr.args:
            return self._templates(mod, expr.args[0])
        if isinstance(expr, ast.Subscript):
            expr = expr.value
            for node in mod.tree.body:
                if (isinstance(node, ast.Assign) and isinstance(expr, ast.Name)
                        and any(isinstance(t, ast.Name) and t.id == expr.id for t in node.targets)
                        and isinstance(node.value, ast.Dict)):
                    return [v.value for v in node.value.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
        if isinstance(expr, ast.Name):
            value = _constant(self.modules, mod.name, expr.id)
            if value is not None:
                return [value]
        raise ScanError(f"{mod.path.relative_to(REPO)}:{expr.lineno}: cannot tell the path of {ast.unparse(expr)!r}")

    def scan_http_calls(self) -> None:
        """``_call("GET", POD, namespace=..., name=...)``: the literal method, the template's path,
        its placeholders from the call's keywords (resolved like the client calls' arguments)."""
        for mod in self.modules.values():
            if mod.name != f"{PACKAGE}.adapters.kube":
                continue
            for node in ast.walk(mod.tree):
                if not (isinstance(node, ast.Call) and len(node.args) >= 2):
                    continue
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
                if name not in self.HTTP_CALLERS or not (isinstance(node.args[0], ast.Constant)
                                                         and isinstance(node.args[0].value, str)):
                    continue
                method = node.args[0].value
                fn = _enclosing_function(mod, node)
                if fn is not None and fn.name in ("_call", "_stream"):
                    continue  # the generic helpers themselves
                for template in self._templates(mod, node.args[1]):
                    placeholders = [p[1:-1] for p in re.findall(r"\{\w+\}", template)
                                    if p not in ("{name}", "{namespace}", "{version}")]
                    options: list[dict[str, str]] = [{}]
                    for key in placeholders:
                        expr = next((k.value for k in node.keywords if k.arg == key), None)
                        if expr is None:
                            raise ScanError(f"{mod.path.relative_to(REPO)}:{node.lineno}: {template} without {key!r}")
                        options = [{**o, key: v} for o in options for v in sorted(self._values(mod, expr, fn))]
                    for values in options:
                        group, resource, named = parse_path(template, values)
                        watching = name in self.WATCHING_CALLERS
                        self.facts.needs.append(Need(group, resource, verb_of(method, named, watching),
                                                     _qualname(mod, fn), f"{method} {template}", _guards(mod, node)))

    # -- kopf -----------------------------------------------------------------------------------

    WATCHING = {"event", "index"}
    CHANGING = {"resume", "create", "update", "delete", "field"}
    SPAWNING = {"timer", "daemon"}
    WEBHOOKS = {"validate", "mutate"}
    EVENT_POSTERS = {"event", "info", "warn", "exception"}

    def _kopf_name(self, mod: Module, func: ast.expr) -> str | None:
        """'on.create', 'timer', 'event' ... for an expression naming a kopf function."""
        chain = []
        while isinstance(func, ast.Attribute):
            chain.append(func.attr)
            func = func.value
        if isinstance(func, ast.Name) and mod.imports.get(func.id) == "kopf":
            return ".".join(reversed(chain))
        return None

    def _selector(self, mod: Module, call: ast.Call, fn: ast.AST) -> tuple[str, str]:
        kw = {k.arg: k.value for k in call.keywords if k.arg}
        args = list(call.args)
        if len(args) == 3:
            group, _version, plural = args
        elif "plural" in kw and "group" in kw:
            group, plural = kw["group"], kw["plural"]
        else:
            raise ScanError(f"{mod.path.relative_to(REPO)}:{call.lineno}: kopf handler without (group, version, plural)")
        (g,) = self._values(mod, group, None)
        (p,) = self._values(mod, plural, None)
        return g, p

    def scan_kopf(self) -> None:
        for mod in self.modules.values():
            if "kopf" not in mod.imports.values():
                continue
            for node in ast.walk(mod.tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for deco in node.decorator_list:
                        if isinstance(deco, ast.Call):
                            name = self._kopf_name(mod, deco.func)
                            if name:
                                self._kopf_handler(mod, node, deco, name)
                elif isinstance(node, ast.Call):
                    name = self._kopf_name(mod, node.func)
                    if name in self.EVENT_POSTERS:
                        fn = _enclosing_function(mod, node)
                        self.facts.needs.append(Need("", "events", "create", _qualname(mod, fn), f"kopf.{name}()", _guards(mod, node)))
                elif isinstance(node, ast.Assign):
                    self._kopf_setting(mod, node)

    def _kopf_handler(self, mod: Module, fn: ast.AST, deco: ast.Call, name: str) -> None:
        kind = name.split(".")[-1]
        origin = _qualname(mod, fn)
        if kind not in self.WATCHING | self.CHANGING | self.SPAWNING | self.WEBHOOKS:
            return  # startup, cleanup, login, probe: no resource
        group, plural = self._selector(mod, deco, fn)
        handler_id = next((k.value.value for k in deco.keywords if k.arg == "id" and isinstance(k.value, ast.Constant)), None)
        self.facts.handlers.append(((group, plural), "validate" if kind in self.WEBHOOKS else kind, handler_id, origin))
        if kind in self.WEBHOOKS:
            return  # served by the webhook: no API access of its own
        why = f"@kopf.{name}"
        self.facts.needs += [Need(group, plural, "list", origin, why), Need(group, plural, "watch", origin, why)]
        optional = any(k.arg == "optional" and isinstance(k.value, ast.Constant) and k.value.value for k in deco.keywords)
        if kind in self.CHANGING:
            self.facts.needs.append(Need(group, plural, "patch:progress", origin, f"{why}: kopf's progress and diff-base records"))
        if kind in self.SPAWNING or (kind == "delete" and not optional):
            self.facts.needs.append(Need(group, plural, "patch", origin, f"{why}: kopf's finalizer"))
        for body_mod, body in self._patch_users(mod, fn):
            for sub in ast.walk(body):
                if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "patch":
                    target = f"{plural}/status" if sub.attr == "status" else plural
                    where = _qualname(body_mod, body)
                    self.facts.needs.append(Need(group, target, "patch", origin, f"{why}: patch.{sub.attr} in {where}"))

    def _patch_users(self, mod: Module, fn: ast.AST, seen: set[str] | None = None) -> list[tuple[Module, ast.AST]]:
        """The handler and every package function it hands its ``patch`` to (transitively)."""
        seen = seen if seen is not None else set()
        qual = _qualname(mod, fn)
        if qual in seen:
            return []
        seen.add(qual)
        found = [(mod, fn)]
        for call in ast.walk(fn):
            if isinstance(call, ast.Call) and any(isinstance(a, ast.Name) and a.id == "patch"
                                                  for a in list(call.args) + [k.value for k in call.keywords]):
                target = self._target_of(mod, call.func)
                if target:
                    found += self._patch_users(*self.functions[target], seen)
        return found

    def _kopf_base(self, mod: Module, class_name: str) -> str | None:
        """The kopf storage a class of this module derives from directly (it decides where
        kopf's records go; the subclass only changes what they hold)."""
        for node in mod.tree.body:
            if isinstance(node, ast.ClassDef) and node.name == class_name:
                for base in node.bases:
                    found = self._kopf_name(mod, base)
                    if found:
                        return found
        return None

    def _kopf_setting(self, mod: Module, node: ast.Assign) -> None:
        for target in node.targets:
            text = ast.unparse(target)
            origin = _qualname(mod, _enclosing_function(mod, node))
            if text.endswith("persistence.progress_storage") or text.endswith("persistence.diffbase_storage"):
                value = node.value
                storage = self._kopf_name(mod, value.func) if isinstance(value, ast.Call) else None
                if storage is None and isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
                    storage = self._kopf_base(mod, value.func.id)  # a subclass of a kopf storage
                if storage is None:
                    raise ScanError(f"{mod.path.relative_to(REPO)}:{node.lineno}: {text} is not a kopf storage")
                if text.endswith("progress_storage"):
                    self.facts.progress_storage = storage
                else:
                    self.facts.diffbase_storage = storage
            elif text.endswith("admission.managed"):
                guards = _guards(mod, node)
                why = "settings.admission.managed: kopf creates and patches the webhook configuration"
                for verb in ("create", "patch"):
                    self.facts.needs.append(Need("admissionregistration.k8s.io", "validatingwebhookconfigurations", verb,
                                                 origin, why, guards))

    def finish(self) -> Facts:
        # kopf's progress and diff-base records go where the storages put them.
        resolved: list[Need] = []
        status_only = self.facts.progress_storage == "StatusProgressStorage" and self.facts.diffbase_storage == "StatusDiffBaseStorage"
        annotations_only = self.facts.progress_storage == "AnnotationsProgressStorage" and self.facts.diffbase_storage == "AnnotationsDiffBaseStorage"
        for need in self.facts.needs:
            if need.verb != "patch:progress":
                resolved.append(need)
                continue
            where = f"({self.facts.progress_storage}, {self.facts.diffbase_storage})"
            if not annotations_only:
                resolved.append(Need(need.group, f"{need.resource}/status", "patch", need.origin, f"{need.why} in status {where}"))
            if not status_only:
                resolved.append(Need(need.group, need.resource, "patch", need.origin, f"{need.why} in annotations {where}"))
        kopf = [
            Need("apiextensions.k8s.io", "customresourcedefinitions", "list", "kopf", "kopf scans for resources"),
            Need("apiextensions.k8s.io", "customresourcedefinitions", "watch", "kopf", "kopf scans for resources"),
            Need("", "events", "create", "kopf", "kopf posts events for handler failures"),
        ]
        for plural in ("clusterkopfpeerings", "kopfpeerings"):
            for verb in ("list", "watch", "patch"):
                kopf.append(Need("kopf.dev", plural, verb, "kopf", "kopf peering: watch the peers, write its own record"))
        for verb in ("list", "watch"):
            kopf.append(Need("", "namespaces", verb, "kopf", "kopf, when namespace-restricted: follow the watched namespaces",
                             ("namespaced",)))
        self.facts.needs = resolved + kopf
        return self.facts


def scan(package_dir: Path = PACKAGE_DIR) -> Facts:
    scanner = Scanner(load_modules(package_dir))
    scanner.scan_client_calls()
    scanner.scan_http_calls()
    scanner.scan_kopf()
    return scanner.finish()


# --------------------------------------------------------------------------------------------
# Policy: from the needs to one installation's grants

#: Code in these modules runs against one named object in the operator's own namespace (or one
#: named cluster-scoped object), so the chart grants it there, by name, and only in the mode that
#: runs it. Verbs that cannot be limited by name (create, list, watch) get no name.
CONFINED = {
    "component_operator.adapters.webhook_tls": {
        "mode": "operator-certs",  # --webhook cluster with --webhook-secret (certManager.enabled false)
        "resources": {
            ("", "secrets"): ("release", "{webhookSecret}"),
            ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): ("cluster", "{webhookConfiguration}"),
        },
        "why": "the webhook's own CA and certificate (adapters/webhook_tls.py) and the caBundle it publishes",
    },
}

#: Needs under these conditions never run in a chart installation.
EXCLUDED_GUARDS = {
    "options.webhook == 'local'": "--webhook local is for a control plane on the same host (the testenv, with admin "
    "credentials); the chart runs --webhook cluster, where the chart owns the webhook configuration",
}

UNNAMEABLE = {"create", "list", "watch", "deletecollection"}


def _confinement(facts: Facts, origin: str) -> list[tuple[str | None, str]]:
    """[(confined module or None, path)] for every way ``origin`` is reached: None = not confined."""
    results: list[tuple[str | None, str]] = []

    def walk(fn: str, path: tuple[str, ...]) -> None:
        module = next((m for m in CONFINED if fn == m or fn.startswith(m + ".")), None)
        if module:
            results.append((module, " <- ".join(path)))
            return
        callers = facts.callers.get(fn, set()) - set(path)
        if not callers:
            results.append((None, " <- ".join(path)))
            return
        for caller in sorted(callers):
            walk(caller, path + (caller,))

    walk(origin, (origin,))
    return results


def required_grants(facts: Facts, *, namespaces: list[str] | None = None, webhook: str = "operator-certs") -> dict[Grant, list[str]]:
    """The grants one installation needs, each with the reasons (need and call path).

    ``namespaces``: the watched namespaces ([] or None: all). ``webhook``: "operator-certs"
    (the operator manages its certificate), "cert-manager" or "off".
    """
    namespaced = bool(namespaces)
    grants: dict[Grant, list[str]] = {}

    def add(grant: Grant, reason: str) -> None:
        grants.setdefault(grant, []).append(reason)

    for need in facts.needs:
        excluded = [g for g in need.guards if g in EXCLUDED_GUARDS]
        if excluded or ("namespaced" in need.guards and not namespaced):
            continue
        scopes: list[str]
        if need.group == "kopf.dev" and need.resource == "clusterkopfpeerings":
            scopes = [] if namespaced else ["cluster"]
        elif need.group == "kopf.dev" and need.resource == "kopfpeerings":
            scopes = [f"namespace:{ns}" for ns in namespaces] if namespaced else []
        else:
            scopes = ["cluster"]
        if need.origin == "kopf":
            for scope in scopes:
                add(Grant(scope, need.group, need.resource, need.verb), need.why)
            continue
        for module, path in _confinement(facts, need.origin):
            if module is None:
                for scope in scopes:
                    add(Grant(scope, need.group, need.resource, need.verb), f"{need.why} in {path}")
                continue
            rule = CONFINED[module]
            if webhook != rule["mode"]:
                continue
            base = need.resource.split("/")[0]
            if (need.group, base) not in rule["resources"]:
                raise ScanError(f"{path}: {need.verb} {need.group}/{need.resource} is not among what {module} may touch")
            scope, name = rule["resources"][(need.group, base)]
            add(Grant(scope, need.group, need.resource, need.verb, None if need.verb in UNNAMEABLE else name),
                f"{need.why} in {path} ({rule['why']})")
    return grants


def main() -> None:
    facts = scan()
    print(f"kopf storages: {facts.progress_storage}, {facts.diffbase_storage}")
    for need in sorted(facts.needs, key=lambda n: (n.group, n.resource, n.verb, n.origin)):
        guard = f"  [if {' and '.join(need.guards)}]" if need.guards else ""
        print(f"{need.group or 'core'}/{need.resource} {need.verb}: {need.origin}: {need.why}{guard}")
    print("\ngrants (defaults):")
    for grant in sorted(required_grants(facts), key=lambda g: (g.scope, g.group, g.resource, g.verb)):
        name = f" [{grant.resource_name}]" if grant.resource_name else ""
        print(f"  {grant.scope}: {grant.group or 'core'}/{grant.resource} {grant.verb}{name}")


if __name__ == "__main__":
    if importlib.util.find_spec("kubernetes") is None:
        raise SystemExit("needs the kubernetes client (the project's venv)")
    main()
