"""kopf handlers, one module per custom resource; importing this package registers them.

The admission webhook handlers (``handlers.admission``) are registered only when a webhook
server is configured: kopf refuses to run admission handlers without one.
"""

from . import batch, health, image, interface, job, startup  # noqa: F401
