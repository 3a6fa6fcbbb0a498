"""The data-plane agent: runs inside every job pod, the way grand-challenge's sagemaker-shim does.

Why it exists: the operator never sees the algorithm's files. Something inside the pod has to
stage the inputs, run the unmodified algorithm (it reads ``/input``, writes ``/output``), time
it, upload what it wrote and report back in a form the algorithm cannot forge. That is this
package. It is frozen into one static executable (``testenv/scripts/build_agent.sh``), so it
imports only the standard library, pydantic, urllib3 and ``adapters.s3`` (never ``kinds``,
kopf or minio: ``adapters.s3`` imports minio only to make a client, and the frozen agent is
built without it). Every module it imports is unpacked and loaded at each of its two starts
per job (``prepare``, ``run``), so the hot path stays this small (a unit test checks).

Contract with the operator
==========================

Commands (``component-operator agent …`` or the static ``component-operator-agent …``):

``prepare``
    init container ``prepare`` (the operator's image). Copies the agent itself to
    ``$COMPONENT_OPERATOR_AGENT_DIR/agent`` (mode 0555; ``$COMPONENT_OPERATOR_AGENT_BINARY`` when
    set, else the static binary when frozen, else a shell wrapper around this interpreter,
    which only works where that interpreter exists: tests), empties ``INPUT_ROOT``, stages every input to
    ``INPUT_ROOT/<prefix>/<relativePath>`` (Value: ``json.dumps(value)``; File: downloaded;
    Image: ``…/<relativePath>/<basename of the source key>``; ZIP with ``decompress``:
    extracted into the parent directory of its path, common prefix, ``__MACOSX``,
    ``.DS_Store`` and ``desktop.ini`` dropped, zip-slip refused), writes
    ``INPUT_ROOT/inputs.json`` = ``inputsJson`` with the values ``inputsJsonValueFrom`` points
    at filled in, and extracts the ``model`` tarball into ``MODEL_ROOT`` and ``groundTruth``
    into ``GROUND_TRUTH_ROOT`` (tarfile ``data`` filter). Every object is read through the
    presigned GET URL the operator gave for it (``COMPONENT_OPERATOR_DOWNLOAD_<n>``); there is
    no credential. Last, it leaves the signing key and the upload policy for ``run`` in the
    handoff file (``COMPONENT_OPERATOR_HANDOFF_FILE``, 0600 in a 0700 directory on the
    pod's shared ``/tmp``).
    Exit 0, or 1 with ONE JSON line on stderr:
    ``{"log", "level": "ERROR", "source": "stderr", "internal": false, "task", "error", "detail",
    "interface", "retryable"}`` (``retryable``: the object store was unreachable, not the
    user's fault; ``error`` is the user-facing message, grand-challenge's where it has one:
    ``Input zip file could not be extracted``, ``Contents of zip file too large``,
    ``Could not set up model: Tarfile could not be extracted`` …; the same line is written
    to ``/dev/termination-log`` when that file exists).

``run -- <program> <args…>``
    the algorithm container's command. ``prctl(PR_SET_DUMPABLE, 0)`` first; then reads and
    deletes the handoff file (refusing to start when it is missing, cannot be deleted, or
    when a grant or the key is in its own environment: a same-uid program can read the
    environment of the container's PID 1, the frozen agent's bootloader); imports all it will
    need and then refuses every import (``run.ImportSeal``: the frozen agent's code is
    unpacked below ``/tmp``, which the program can write); starts the program without any
    ``COMPONENT_OPERATOR_*`` / ``GRAND_CHALLENGE_*`` variable (nor PyInstaller/staticx
    internals), in its own process group, as ``COMPONENT_OPERATOR_RUN_AS`` (``uid[:gid]``)
    when the agent is root; streams its stdout/stderr as JSON lines; enforces
    ``timeLimitSeconds`` (SIGTERM, grace ``COMPONENT_OPERATOR_TERMINATION_GRACE_SECONDS``
    default 5, SIGKILL, then the external stderr line ``Time limit exceeded``,
    ``return_code`` 1, ``timed_out`` true); on exit code 0 uploads every regular file under
    ``OUTPUT_ROOT`` (symlinks only when they resolve inside it) to ``outputPrefix + <relative
    path>`` with multipart/form-data POSTs under the upload policy (streamed from disk; the
    size and SHA-256 recorded are those of the bytes sent; a file above the policy's
    ``maxBytes`` is listed with its size but not uploaded); always writes the signed result
    to ``resultUri``; exits with the program's exit code (signals as 128+n, so 137 stays 137).
    Exit 125: the agent itself failed (bad invocation, no handoff, object store unreachable)
    and no result was written; 126/127: the program could not be executed / does not exist
    (a result is written).

``version``
    one JSON line ``{"agent_version", "python", "frozen", "static"}``.

Environment:

=========================================  ==================================================
``COMPONENT_OPERATOR_INVOCATION_FILE``     the invocation document (JSON, from a ConfigMap)
``COMPONENT_OPERATOR_HANDOFF_FILE``        both containers: ``prepare`` writes it, ``run``
                                           reads and deletes it (default
                                           ``/tmp/.component-operator/handoff.json``)
``COMPONENT_OPERATOR_DOWNLOAD_<n>``        ``prepare`` only (from the Secret):
                                           ``{"source": "s3://…", "url": "<presigned GET>"}``
``COMPONENT_OPERATOR_UPLOAD``              ``prepare`` only (from the Secret): the signed POST
                                           policy ``{"url", "bucket", "keyPrefix", "fields",
                                           "maxBytes", "expiresAt", "metadataKeys"}``
``COMPONENT_OPERATOR_SIGNING_KEY_HEX``     ``prepare`` only (from the Secret): HMAC key, hex of
                                           >= 32 random bytes; ``run`` refuses to start with it
``COMPONENT_OPERATOR_S3_CA_FILE``          optional PEM bundle of a private CA
``COMPONENT_OPERATOR_INPUT_ROOT``          default ``/input``
``COMPONENT_OPERATOR_OUTPUT_ROOT``         default ``/output``
``COMPONENT_OPERATOR_MODEL_ROOT``          default ``/opt/ml/model``
``COMPONENT_OPERATOR_GROUND_TRUTH_ROOT``   default ``/opt/ml/input/data/ground_truth``
``COMPONENT_OPERATOR_AGENT_DIR``           shared emptyDir, default ``/agent``
``COMPONENT_OPERATOR_AGENT_BINARY``        ``prepare`` only, optional: the static agent to install
                                           when ``prepare`` itself is not the static binary
``COMPONENT_OPERATOR_RUN_AS``              optional ``uid[:gid]`` for the program (root agent only)
=========================================  ==================================================

No credential of the object store is ever in a job pod: the grants are per attempt, expire,
and allow reading exactly the attempt's input objects and creating objects only below
``jobs/<namespace>/<name>/<uid>/<attempt>/`` (``transfer``, ``planning.dataplane``).

Invocation document (camelCase; unknown keys are refused)::

    {"jobId": "<namespace>/<name>/<uid>/<attempt>",
     "inputs": [{"interface", "relativePath", "prefix": "" , "superKind": "Value"|"File"|"Image",
                 "kind": "<code>", "value": <json>, "source": "s3://bucket/key"|null,
                 "decompress": false, "sha256": "<hex>"|null}],
     "inputsJson": [<grand-challenge inputs.json entries, inline values null>],
     "inputsJsonValueFrom": [<the Value input whose value fills entry i's "value">|null] | [],
     "outputs": [{"interface", "relativePath", "kind", "superKind"}],
     "outputPrefix": "s3://bucket/prefix/", "resultUri": "s3://bucket/prefix/result.json",
     "timeLimitSeconds": 3600, "model": "s3://…"|null, "groundTruth": "s3://…"|null,
     "maxInputBytes": 10737418240, "maxZipEntries": 10000}

``sha256`` (optional) is checked after download. An output file whose key would be the
result's key is not uploaded (keep the result outside ``outputPrefix``).

Result document (the exact bytes are signed; ``HMAC-SHA256(key, body)`` in hex is stored as
the object's user metadata ``signature-hmac-sha256``, i.e. header
``x-amz-meta-signature-hmac-sha256``)::

    {"pk": jobId, "return_code": 0, "timed_out": false, "exec_duration_seconds": 1.23,
     "invoke_duration_seconds": null, "started_at": "2026-01-01T00:00:00.000000Z",
     "finished_at": "…Z", "peak_memory_bytes": 123456|null,
     "outputs": [{"relative_path", "size", "sha256", "uri"}], "agent_version": "0.1.0"}

The operator reads it with ``result.fetch_and_verify``.

Log lines (stdout and stderr of both commands, one JSON object per line)::

    {"log": "<text>", "level": "INFO"|"WARNING"|"ERROR", "source": "stdout"|"stderr",
     "internal": false, "task": jobId}

The program's lines are ``internal: false`` (stdout lines INFO, stderr lines WARNING, as the
shim); the agent's own lines are ``internal: true`` (levels up to INFO on stdout, above on
stderr). ``logs.split_user_logs`` recovers the program's two streams from ``kubectl logs``.
"""
