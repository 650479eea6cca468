"""Which modules are running: a stack of module paths kept by forward hooks, for code that watches a forward.

Shared by every watcher of a forward pass (hwmodel's recorder, and in
`surgery` the probe and the sparsity measurement): each needs to know whose
call an op belongs to, and some need to see each call begin and end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

OnEnter = Callable[[str, nn.Module, tuple, dict], None]
OnLeave = Callable[[str, nn.Module, tuple, dict, Any], None]


class ModuleStack:
    """Paths of the watched modules running now, outermost first, while the context is open.

    Args:
        modules: path -> module to watch.
        on_enter: called with (path, module, args, kwargs) after the path is pushed.
        on_leave: called with (path, module, args, kwargs, output) before the path is popped.
        outer: paths already running when the context opens (a caller running a module by hand).

    Example:
        >>> import torch
        >>> model = nn.Sequential(nn.Linear(2, 2))
        >>> seen = []
        >>> with ModuleStack({"0": model[0]}, on_enter=lambda path, *_: seen.append(path)) as stack:
        ...     _ = model(torch.zeros(1, 2))
        >>> seen, stack.paths
        (['0'], [])
    """

    def __init__(
        self, modules: Mapping[str, nn.Module], on_enter: OnEnter | None = None, on_leave: OnLeave | None = None, outer: Sequence[str] = ()
    ) -> None:
        self.modules, self.on_enter, self.on_leave = dict(modules), on_enter, on_leave
        self.paths: list[str] = list(outer)
        self._handles: list[Any] = []

    @property
    def current(self) -> str | None:
        """The innermost watched module running now."""
        return self.paths[-1] if self.paths else None

    def __enter__(self) -> ModuleStack:
        for path, module in self.modules.items():
            self._handles.append(module.register_forward_pre_hook(self._enter(path), with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._leave(path), with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _enter(self, path: str) -> Callable[[nn.Module, tuple, dict], None]:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            self.paths.append(path)
            if self.on_enter is not None:
                self.on_enter(path, module, args, kwargs)

        return hook

    def _leave(self, path: str) -> Callable[[nn.Module, tuple, dict, Any], None]:
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            if self.on_leave is not None:
                self.on_leave(path, module, args, kwargs, output)
            self.paths.pop()

        return hook
