"""Package attributes that import their module on first use (PEP 562), so `surgery --help` does not load torch.

A package lists its public names and the module each lives in; `import surgery` then
costs nothing until a name is used, and `surgery.plan` works as an eager import would.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose public names (keys) live in the modules given (values).

    A public name may not also name a submodule: once that submodule is imported, Python sets the
    package attribute to the module and the name would stop meaning the function.

    Example:
        >>> getattr_, dir_ = lazy_exports("pkg", {"sqrt": "math"})
        >>> getattr_("sqrt")(9.0), "sqrt" in dir_()
        (3.0, True)
    """
    clashes = sorted(name for name in exports if _is_submodule(package, name))
    if clashes:
        raise ValueError(f"{package}: public names {clashes} are also submodules; import them from their modules")

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__


def _is_submodule(package: str, name: str) -> bool:
    try:
        return importlib.util.find_spec(f"{package}.{name}") is not None
    except ModuleNotFoundError:  # `package` is not importable (a doctest's made-up name)
        return False
