"""kopf handlers, one module per custom resource; importing this package registers them."""

from . import interface, startup  # noqa: F401
