"""Camera and Z stage found by a shared name: the ``Link`` property and its registry.

pymmcore-plus gives Python devices no handle on the core or on other devices, so a camera and
the Z stage it images at share a ``Link`` name: each registers itself under that name while it
is initialised, and the camera looks up its stage at every frame.
:func:`~livefocus.devices.demo_core` and :func:`~livefocus.devices.replay_core` give every core
a link of its own; configuration files use ``livefocus`` unless they say otherwise.
"""

from __future__ import annotations

import weakref
from typing import Any, ClassVar

__all__ = ["DEFAULT_LINK", "Linked", "linked"]

#: Link name used when a configuration file does not set one.
DEFAULT_LINK = "livefocus"

_REGISTRIES: dict[str, weakref.WeakValueDictionary[str, Any]] = {
    "stage": weakref.WeakValueDictionary(),
    "camera": weakref.WeakValueDictionary(),
    "xystage": weakref.WeakValueDictionary(),
}


def linked(role: str, link: str) -> Any:
    """The initialised device of ``role`` (``"stage"``, ``"camera"`` or ``"xystage"``) under
    ``link``, or None."""
    return _REGISTRIES[role].get(link)


class Linked:
    """Mixin of a Python device that registers itself under its ``Link`` while initialised.

    Subclasses set :attr:`role`, call :meth:`_register_link` in ``__init__`` (after the
    device's own ``__init__``), and keep :meth:`initialize` / :meth:`shutdown` chained.
    """

    role: ClassVar[str]
    _link: str
    _initialized_: Any

    def _register_link(self) -> None:
        self._link = DEFAULT_LINK
        register: Any = getattr(self, "register_property")  # noqa: B009 - a device method
        register("Link", property_type=str, getter=Linked._get_link, setter=Linked._set_link)

    @property
    def link(self) -> str:
        """The link name."""
        return self._link

    def _get_link(self) -> str:
        return self._link

    def _set_link(self, value: str) -> None:
        registry = _REGISTRIES[self.role]
        if registry.get(self._link) is self:
            del registry[self._link]
        self._link = str(value)
        if self._initialized_ is True:
            registry[self._link] = self

    def initialize(self) -> None:
        """Register the device under its link."""
        _REGISTRIES[self.role][self._link] = self

    def shutdown(self) -> None:
        """Unregister the device."""
        registry = _REGISTRIES[self.role]
        if registry.get(self._link) is self:
            del registry[self._link]
