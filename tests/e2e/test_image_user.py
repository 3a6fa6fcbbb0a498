"""A USER name really runs as its uid on the real node.

grand-challenge's algorithm template does ``useradd -r user`` and ``USER user``. Here the
operator's own image (a Debian root filesystem, already imported into the node's containerd)
gets one more layer with that /etc/passwd entry and a script printing ``id -u`` and
``id -un``; ``crane append`` and ``crane mutate`` push it to the local registry without
downloading the base. The operator resolves ``user`` to 999 from the top layer, and the
algorithm, run by the agent in a "restricted" namespace, says so itself.
"""

from __future__ import annotations

import os
import uuid

from testenv.images import oci

from ..support.cluster import wait_until
from ..support.oci_images import crane
from .conftest import create_image, wait_image
from .test_real_node import create_job, get_job, job_body, job_pod

PASSWD = b"root:x:0:0:root:/root:/bin/sh\nuser:x:999:999::/home/user:/bin/sh\n"
GROUP = b"root:x:0:\nuser:x:999:\n"
WHOAMI = b"#!/bin/sh\nid -u\nid -un\n"


def test_a_user_name_runs_as_its_uid_from_etc_passwd(testenv, custom, core, e2e_ns, node_images, tmp_path):
    env = {**os.environ, **testenv.env}
    ref = f"{testenv.env['TESTENV_REGISTRY']}/tests/e2e-named-user:{uuid.uuid4().hex[:8]}"
    layer = oci.write_layer([
        oci.File.dir("etc"), oci.File("etc/passwd", PASSWD), oci.File("etc/group", GROUP),
        oci.File.dir("opt"), oci.File("opt/whoami.sh", WHOAMI, mode=0o755),
    ], tmp_path / "useradd.tar.gz")  # fmt: skip
    crane("append", "--insecure", "-b", node_images["component-operator"]["ref"], "-f", str(layer.blob.path), "-t", ref, env=env)
    crane("mutate", "--insecure", ref, "--user", "user", "--entrypoint", "/bin/sh", "--cmd", "/opt/whoami.sh", "-t", ref, env=env)

    create_image(custom, e2e_ns, "named-user", ref)
    image = wait_image(custom, e2e_ns, "named-user")
    assert (image["user"], image["runAsUser"], image["runAsGroup"]) == ("user", 999, 999)

    create_job(custom, e2e_ns, job_body("whoami", "named-user"))
    status = wait_until(lambda: (get_job(custom, e2e_ns, "whoami").get("status") or {}).get("phase") in ("Succeeded", "Failed")
                        and get_job(custom, e2e_ns, "whoami")["status"], timeout=180, interval=0.5, message="job whoami to end")  # fmt: skip
    assert status["phase"] == "Succeeded", (status.get("errorMessage"), status.get("detailedErrorMessage"), status.get("stderr"))
    said = [line.split()[-1] for line in status["stdout"].splitlines() if line.strip()]  # timestamps may lead
    assert said[-2:] == ["999", "user"], status["stdout"]
    security = job_pod(core, e2e_ns, "whoami").spec.security_context
    assert (security.run_as_user, security.run_as_group) == (999, 999)
