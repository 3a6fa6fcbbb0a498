"""kopf handlers, one module per custom resource; importing this package registers them."""

from . import admission, image, interface, job, startup  # noqa: F401
