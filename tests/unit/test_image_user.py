"""Running as the image's own user: USER names resolved from the image's layers.

We test these aspects:

* parsing /etc/passwd and /etc/group: well-formed lines, malformed ones ignored, first wins;
* which USER forms need which file (numeric ones need none: no layer is downloaded);
* resolution outcomes: ids, root (uid 0) refused, unknown user or group, missing files,
  invalid values, errors from the layer search, with messages naming config.User and value;
* the layer search (adapters.rootfs): top-down, stopping at the defining layer, whiteouts and
  opaque directories, path spellings, gzip/plain/zstd, links refused, the bounds, streaming;
* the registry client: layers fetched only for names, top layer first, outages transient;
* the status decision (runAsUser/runAsGroup, Failed with the message) and the pod's ids.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tracemalloc
from contextlib import contextmanager

import httpx
import pytest

from component_operator.adapters import registry, rootfs
from component_operator.api.image import ComponentImageStatus
from component_operator.config import OperatorConfig
from component_operator.planning import image_users as users
from component_operator.planning import images
from component_operator.planning.conditions import get_condition
from component_operator.planning.pods import build_pod
from testenv.images import oci

from .jobfixtures import image as image_object
from .jobfixtures import job

PASSWD = b"root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
USER_LINE = b"user:x:999:999::/home/user:/bin/sh\n"
GROUP = b"root:x:0:\nstaff:x:50:user\nuser:x:999:\n"
NOW = "2025-01-01T00:00:00Z"
DIGEST = "sha256:" + "a" * 64


# --- parsing ---------------------------------------------------------------------------------


def test_passwd_lines_are_parsed_and_malformed_ones_ignored():
    content = b"\n".join([
        b"# a comment",
        b"",
        b"root:x:0:0:root:/root:/bin/bash",
        b"  indented:x:5:6::/:/bin/sh",            # leading blanks skipped, as glibc does
        b"crlf:x:7:8::/:/bin/sh\r",
        b"short:x:9:10",                           # four fields are enough for the ids
        b"three:x:11",                             # too few fields
        b"badid:x:abc:1::/:/bin/sh",
        b"badgid:x:12:-1::/:/bin/sh",
        b"-dash:x:13:13::/:/bin/sh",               # POSIX: no leading hyphen
        b"+nis::0:0:::",                           # NIS compat entry
        b"sp ace:x:14:14::/:/bin/sh",
        b"host$:x:15:15::/:/bin/false",            # machine accounts end in $
        b"dup:x:16:16::/:/bin/sh",
        b"dup:x:17:17::/:/bin/sh",                 # the first line of a name wins
        b"caf\xc3\xa9:x:18:18::/:/bin/sh",         # not portable
        b"bytes\xff:x:19:19::/:/bin/sh",           # not UTF-8
        b"extra:x:20:21:gecos:/home:/bin/sh:more:fields",
    ])  # fmt: skip
    parsed = users.parse_passwd(content)
    assert parsed == {
        "root": (0, 0), "indented": (5, 6), "crlf": (7, 8), "short": (9, 10), "host$": (15, 15), "dup": (16, 16), "extra": (20, 21),
    }  # fmt: skip


def test_group_lines_are_parsed():
    parsed = users.parse_group(b"root:x:0:\nstaff:x:50:user,other\nbad:x:\nnogid:x:x:\n# c\nstaff:x:51:\nshort:x:52\n")
    assert parsed == {"root": 0, "staff": 50, "short": 52}


def test_huge_ids_are_not_converted():
    assert users.parse_passwd(b"big:x:" + b"9" * 5000 + b":1::/:/bin/sh\n")["big"][0] > users.MAX_ID


# --- which files a USER needs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "user,needed",
    [
        ("1000", ()),
        ("1000:1000", ()),
        ("1000:", ()),
        ("user", (users.PASSWD,)),
        ("user:", (users.PASSWD,)),
        ("user:group", (users.PASSWD, users.GROUP)),
        ("1000:staff", (users.GROUP,)),
        ("user:1000", (users.PASSWD,)),
        ("root", ()),  # refused without looking
        ("ROOT:staff", ()),
        ("0:staff", ()),
        (":staff", ()),  # an empty user part is uid 0
        ("bad name", ()),  # invalid: refused without looking
        ("user:bad/group", ()),
    ],
)
def test_files_needed(user, needed):
    assert users.files_needed(user) == needed


# --- resolution ------------------------------------------------------------------------------------

FILES = users.UserFiles(files={users.PASSWD: PASSWD + USER_LINE, users.GROUP: GROUP})


@pytest.mark.parametrize(
    "user,expected",
    [
        ("user", users.RunAs(999, 999)),
        ("user:", users.RunAs(999, 999)),
        ("user:staff", users.RunAs(999, 50)),
        ("user:1000", users.RunAs(999, 1000)),
        ("1000:staff", users.RunAs(1000, 50)),
        ("nobody", users.RunAs(65534, 65534)),
        ("1000", users.RunAs(1000, None)),
        ("1000:0", users.RunAs(1000, 0)),
        ("2147483647", users.RunAs(2147483647, None)),
    ],
)
def test_names_resolve_to_ids(user, expected):
    assert users.resolve(user, FILES) == expected


def test_numeric_users_resolve_without_files():
    assert users.resolve("1000:1000", None) == users.RunAs(1000, 1000)
    assert users.resolve("user", None) is None  # nobody looked: the caller decides


@pytest.mark.parametrize("user", ["toor", "toor:staff", "0", "00", ":1000", "root", "Root:staff"])
def test_uid_zero_is_root(user):
    outcome = users.resolve(user, FILES)
    assert outcome == users.UserProblem(users.ROOT_REASON, "")


@pytest.mark.parametrize(
    "user,files,reason,fragments",
    [
        ("nobody-here", FILES, users.UNKNOWN_USER_REASON, ["config.User 'nobody-here'", "/etc/passwd in the image has no such user"]),
        ("user:nogroup", FILES, users.UNKNOWN_GROUP_REASON, ["config.User 'user:nogroup'", "/etc/group in the image has no such group"]),
        ("user", users.UserFiles(files={users.PASSWD: None}), users.NO_DATABASE_REASON, ["config.User 'user'", "has no /etc/passwd"]),
        ("1000:staff", users.UserFiles(files={users.GROUP: None}), users.NO_DATABASE_REASON, ["has no /etc/group"]),
        ("a b", None, users.INVALID_USER_REASON, ["config.User 'a b'", "neither a uid nor a user name", "POSIX"]),
        ("user:-x", None, users.INVALID_USER_REASON, ["'-x' is neither a gid nor a group name"]),
        ("4294967296", None, users.INVALID_USER_REASON, ["uid 4294967296", "0 to 2147483647"]),
        ("big", users.UserFiles(files={users.PASSWD: b"big:x:3000000000:1::/:/bin/sh\n"}), users.INVALID_USER_REASON, ["uid 3000000000"]),
        ("user", users.UserFiles(error="searching stopped: too big", error_reason=users.BUDGET_REASON), users.BUDGET_REASON,
         ["config.User 'user'", "searching stopped: too big", "numeric USER"]),
    ],
)  # fmt: skip
def test_unresolvable_users_say_why(user, files, reason, fragments):
    outcome = users.resolve(user, files)
    assert isinstance(outcome, users.UserProblem) and outcome.reason == reason
    for fragment in fragments:
        assert fragment in outcome.message


def test_a_numeric_user_ignores_a_failed_search():
    assert users.resolve("1000", users.UserFiles(error="boom", error_reason=users.UNREADABLE_REASON)) == users.RunAs(1000)


# --- the layer search ----------------------------------------------------------------------------


def layer(*files: oci.File, compress: bool = True) -> bytes:
    return oci.layer(list(files), compress=compress).blob.data


def raw_tar(entries: list[tuple[str, bytes | None, bytes]], compress=None) -> bytes:
    """A tar with exact names: (name, content or None for a directory, type)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, type_ in entries:
            info = tarfile.TarInfo(name)
            info.type = type_
            if type_ in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = content.decode()
                tar.addfile(info)
            elif type_ == tarfile.DIRTYPE:
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    data = out.getvalue()
    return gzip.compress(data) if compress == "gzip" else data


class Layers:
    """Layer blobs in manifest order (base first), recording which ones were opened."""

    def __init__(self, *blobs: bytes, chunk: int = 4096):
        self.blobs = list(blobs)
        self.chunk = chunk
        self.opened: list[int] = []
        self.descriptors = [{"digest": f"sha256:{i:064x}", "mediaType": oci.OCI_LAYER_GZIP, "size": len(b)} for i, b in enumerate(blobs)]

    @contextmanager
    def open(self, descriptor):
        index = int(descriptor["digest"].split(":")[1], 16)
        self.opened.append(index)
        data = self.blobs[index]
        yield (data[i : i + self.chunk] for i in range(0, len(data), self.chunk))

    def read(self, wanted=(users.PASSWD,), **bounds) -> users.UserFiles:
        return rootfs.read_files(self.open, self.descriptors, wanted, **bounds)


def passwd(content: bytes) -> oci.File:
    return oci.File("etc/passwd", content)


def test_the_top_layer_wins_and_lower_layers_are_not_read():
    stack = Layers(layer(passwd(PASSWD)), layer(passwd(PASSWD + USER_LINE)), layer(oci.File("app/model.bin", b"x" * 1000)))
    found = stack.read()
    assert found.files == {users.PASSWD: PASSWD + USER_LINE} and found.error is None
    assert stack.opened == [2, 1]  # top first; the base layer is never opened
    assert found.layers_read == 2 and found.bytes_read == len(stack.blobs[2]) + len(stack.blobs[1])


def test_the_search_goes_down_until_each_file_is_defined():
    stack = Layers(layer(oci.File("etc/group", GROUP)), layer(passwd(PASSWD + USER_LINE)), layer(oci.File("hello", b"hi")))
    found = stack.read((users.PASSWD, users.GROUP))
    assert found.files == {users.PASSWD: PASSWD + USER_LINE, users.GROUP: GROUP}
    assert stack.opened == [2, 1, 0]


def test_no_layer_has_the_file():
    stack = Layers(layer(oci.File("hello", b"hi")), layer(oci.File.dir("etc"), oci.File("etc/hostname", b"h")))
    assert stack.read().files == {users.PASSWD: None}
    assert stack.opened == [1, 0]


@pytest.mark.parametrize(
    "hiding",
    [
        [oci.File.whiteout("etc/passwd")],                       # etc/.wh.passwd
        [oci.File.whiteout("etc")],                              # .wh.etc
        [oci.File.dir("etc"), oci.File("etc/.wh..wh..opq", b"")],  # opaque etc/
        [oci.File(".wh..wh..opq", b"")],                         # opaque root
        [oci.File("etc", b"not a directory")],                   # etc replaced by a file
        [oci.File.dir("etc/passwd")],                            # passwd replaced by a directory
    ],
)  # fmt: skip
def test_whiteouts_hide_the_layers_below(hiding):
    stack = Layers(layer(passwd(PASSWD + USER_LINE)), layer(*hiding), layer(oci.File("hello", b"hi")))
    assert stack.read().files == {users.PASSWD: None}
    assert stack.opened == [2, 1]


def test_a_file_next_to_a_whiteout_in_the_same_layer_counts():
    """Whiteouts hide only lower layers; an opaque etc/ with a new passwd is that passwd."""
    stack = Layers(
        layer(passwd(PASSWD)),
        layer(oci.File.dir("etc"), oci.File("etc/.wh..wh..opq", b""), passwd(USER_LINE)),
    )
    assert stack.read().files == {users.PASSWD: USER_LINE}
    opaque_after = raw_tar([("etc/passwd", USER_LINE, tarfile.REGTYPE), ("etc/.wh.passwd", b"", tarfile.REGTYPE)])
    assert Layers(layer(passwd(PASSWD)), opaque_after).read().files == {users.PASSWD: USER_LINE}


def test_an_opaque_directory_elsewhere_hides_nothing():
    stack = Layers(layer(passwd(PASSWD + USER_LINE)), layer(oci.File.dir("opt"), oci.File("opt/.wh..wh..opq", b""), oci.File.whiteout("etc/passwd-")))
    assert stack.read().files == {users.PASSWD: PASSWD + USER_LINE}


@pytest.mark.parametrize("name", ["./etc/passwd", "/etc/passwd", "etc//passwd", "./etc/./passwd"])
def test_path_spellings(name):
    stack = Layers(raw_tar([("./", None, tarfile.DIRTYPE), ("./etc", None, tarfile.DIRTYPE), (name, USER_LINE, tarfile.REGTYPE)], compress="gzip"))
    assert stack.read().files == {users.PASSWD: USER_LINE}


def test_whiteout_spelled_with_dot_slash():
    stack = Layers(layer(passwd(PASSWD)), raw_tar([("./etc/.wh.passwd", b"", tarfile.REGTYPE)]))
    assert stack.read().files == {users.PASSWD: None}


def test_plain_and_gzip_layers_mix():
    stack = Layers(layer(passwd(PASSWD + USER_LINE), compress=False), layer(oci.File("hello", b"hi"), compress=True))
    assert stack.read().files == {users.PASSWD: PASSWD + USER_LINE}


def test_an_empty_blob_is_a_layer_without_entries():
    assert Layers(layer(passwd(USER_LINE)), b"", gzip.compress(b"")).read().files == {users.PASSWD: USER_LINE}


def test_zstd_layers():
    zstandard = pytest.importorskip("zstandard")
    tar = layer(passwd(USER_LINE), compress=False)
    frames = zstandard.ZstdCompressor().compress(tar[:700]) + zstandard.ZstdCompressor().compress(tar[700:])
    assert Layers(frames).read().files == {users.PASSWD: USER_LINE}


def test_zstd_without_a_decoder_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "compression", None)
    found = Layers(b"\x28\xb5\x2f\xfd" + b"\0" * 100).read()
    assert found.error_reason == users.UNREADABLE_REASON
    assert "zstd-compressed" in found.error and "zstandard" in found.error


@pytest.mark.parametrize(
    "entries,fragment",
    [
        ([("etc/passwd", b"/usr/share/passwd", tarfile.SYMTYPE)], "/etc/passwd in layer sha256:"),
        ([("etc", b"private/etc", tarfile.SYMTYPE)], "/etc in layer"),
        ([("etc/passwd-", USER_LINE, tarfile.REGTYPE), ("etc/passwd", b"etc/passwd-", tarfile.LNKTYPE)], "a hard link to 'etc/passwd-'"),
    ],
)
def test_links_are_not_followed_and_say_so(entries, fragment):
    found = Layers(layer(passwd(PASSWD)), raw_tar(entries)).read()
    assert found.error_reason == users.UNREADABLE_REASON and fragment in found.error
    assert "does not follow" in found.error


def test_a_corrupt_layer_is_unreadable():
    good = layer(passwd(USER_LINE))
    found = Layers(good[: len(good) // 2] + b"garbage" * 10).read()
    assert found.error_reason == users.UNREADABLE_REASON and "not a readable tar archive" in found.error


# --- bounds ---------------------------------------------------------------------------------------


def test_the_compressed_byte_budget():
    noise = os.urandom(256 * 1024)  # incompressible: the blob is about as large
    stack = Layers(layer(passwd(USER_LINE)), layer(oci.File("noise", noise)), chunk=16 * 1024)
    found = stack.read(max_layer_bytes=100_000)
    assert found.error_reason == users.BUDGET_REASON
    assert "more than the 100000 compressed layer bytes" in found.error
    assert rootfs.MAX_LAYER_BYTES_ENV in found.error and "after 1 of 2 layers" in found.error
    assert 100_000 < found.bytes_read <= 100_000 + 16 * 1024
    assert stack.opened == [1]
    # the message a user sees names config.User, the value and the bound
    outcome = users.resolve("user", found)
    assert outcome.reason == users.BUDGET_REASON and "config.User 'user'" in outcome.message and "100000" in outcome.message


def test_the_default_bounds_are_documented_sizes():
    assert rootfs.MAX_LAYER_BYTES == 2 * 1024**3 and rootfs.MAX_FILE_BYTES == 1024**2
    assert rootfs.MAX_TAR_BYTES == 8 * 1024**3


def test_the_decompressed_byte_budget():
    bomb = layer(oci.File("zeros", b"\0" * (4 * 1024 * 1024)))  # a few KiB compressed
    found = Layers(layer(passwd(USER_LINE)), bomb).read(max_tar_bytes=1024 * 1024)
    assert found.error_reason == users.BUDGET_REASON and "decompressed layer bytes" in found.error


def test_the_file_size_bound():
    found = Layers(layer(passwd(USER_LINE * 100))).read(max_file_bytes=1000)
    assert found.error_reason == users.TOO_LARGE_REASON
    assert f"/etc/passwd in layer sha256:{0:064x} is {len(USER_LINE) * 100} bytes, more than the 1000" in found.error


def test_a_huge_tar_header_is_refused():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("x")
        info.pax_headers = {"comment": "c" * (rootfs.MAX_HEADER_BYTES + 10)}
        tar.addfile(info, io.BytesIO(b""))
    found = Layers(out.getvalue()).read()
    assert found.error_reason == users.UNREADABLE_REASON and "tar header" in found.error


def test_layers_are_streamed_not_held(tmp_path):
    """A 48 MiB layer is scanned with a few chunks in memory, never the whole of it."""
    path = tmp_path / "big.tar.gz"
    with gzip.open(path, "wb", compresslevel=1) as out, tarfile.open(fileobj=out, mode="w|") as tar:
        info = tarfile.TarInfo("data/big.bin")
        info.size = 48 * 1024 * 1024
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(USER_LINE)
        tar.addfile(info, io.BytesIO(USER_LINE))

    @contextmanager
    def open_file(_descriptor):
        with open(path, "rb") as f:
            yield iter(lambda: f.read(64 * 1024), b"")

    tracemalloc.start()
    try:
        found = rootfs.read_files(open_file, [{"digest": "sha256:" + "b" * 64}], [users.PASSWD])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found.files == {users.PASSWD: USER_LINE}
    assert peak < 4 * 1024 * 1024


# --- the registry client --------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class LayerRegistry:
    """A fake registry with one image made of real layers."""

    def __init__(self, user: str, layers: list[bytes], *, bearer: bool = False):
        self.blobs = {sha(b): b for b in layers}
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"User": user, "Entrypoint": ["/run"]}}).encode()
        self.blobs[sha(config)] = config
        self.layer_digests = [sha(b) for b in layers]
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": registry.OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
            "layers": [{"mediaType": oci.OCI_LAYER_GZIP, "digest": sha(b), "size": len(b)} for b in layers],
        }).encode()  # fmt: skip
        self.requests: list[str] = []
        self.bearer = bearer
        self.tokens = 0
        self.broken: str | None = None
        self.expire_after_manifest = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append(path)
        if request.url.host == "auth.example":
            self.tokens += 1
            return httpx.Response(200, json={"token": f"tok-{self.tokens}"})
        if self.bearer:
            valid = {f"Bearer tok-{self.tokens}"} if not (self.expire_after_manifest and "/blobs/" in path and self.tokens == 1) else set()
            if request.headers.get("authorization") not in valid:
                challenge = 'Bearer realm="https://auth.example/token",service="reg.example"'
                return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if "/manifests/" in path:
            return httpx.Response(200, headers={"Content-Type": registry.OCI_MANIFEST}, content=self.manifest)
        digest = path.rsplit("/", 1)[1]
        if digest == self.broken:
            return httpx.Response(200, stream=Broken(self.blobs[digest][:100]))
        if digest not in self.blobs:
            return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"}]})
        return httpx.Response(200, content=self.blobs[digest])

    def inspect(self, **kw):
        return registry.inspect_image("reg.example/team/algo:v1", transport=httpx.MockTransport(self.handler), **kw)


class Broken(httpx.SyncByteStream):
    """Sends a few bytes, then the connection drops."""

    def __init__(self, head: bytes):
        self.head = head

    def __iter__(self):
        yield self.head
        raise httpx.ReadError("connection reset by peer")


def grand_challenge_layers() -> list[bytes]:
    """A base with passwd and group, the template's useradd layer, then the algorithm's files."""
    return [
        layer(oci.File.dir("etc"), passwd(PASSWD), oci.File("etc/group", GROUP), compress=False),
        layer(oci.File.dir("etc"), passwd(PASSWD + USER_LINE)),
        layer(oci.File("opt/app/inference.py", b"print('hi')\n")),
    ]


def test_a_user_name_is_resolved_from_the_layers_top_first():
    fake = LayerRegistry("user", grand_challenge_layers())
    info = fake.inspect()
    assert info.user_files.files == {users.PASSWD: PASSWD + USER_LINE}
    blob_paths = [p.rsplit("/", 1)[1] for p in fake.requests if "/blobs/" in p]
    assert blob_paths[1:] == [fake.layer_digests[2], fake.layer_digests[1]]  # after the config: top down, base untouched
    assert images.resolve_user("user", info) == users.RunAs(999, 999)


def test_numeric_users_download_no_layer():
    fake = LayerRegistry("1000:1000", grand_challenge_layers())
    info = fake.inspect()
    assert info.user_files is None
    assert [p for p in fake.requests if "/blobs/" in p] == [f"/v2/team/algo/blobs/{info.config_digest}"]


def test_layer_downloads_reuse_and_renew_the_token():
    fake = LayerRegistry("user", grand_challenge_layers(), bearer=True)
    assert fake.inspect().user_files.files[users.PASSWD] == PASSWD + USER_LINE
    assert fake.tokens == 1
    fake = LayerRegistry("user", grand_challenge_layers(), bearer=True)
    fake.expire_after_manifest = True  # the first token stops working for blobs: a new one is fetched
    assert fake.inspect().user_files.files[users.PASSWD] == PASSWD + USER_LINE
    assert fake.tokens == 2


def test_a_dropped_layer_download_is_transient():
    fake = LayerRegistry("user", grand_challenge_layers())
    fake.broken = fake.layer_digests[2]
    with pytest.raises(registry.RegistryUnavailable) as err:
        fake.inspect()
    assert err.value.transient and "broke off a layer download" in str(err.value)


def test_a_missing_layer_is_reported_not_raised():
    fake = LayerRegistry("user", grand_challenge_layers())
    del fake.blobs[fake.layer_digests[2]]
    found = fake.inspect().user_files
    assert found.error_reason == users.UNREADABLE_REASON and "BLOB_UNKNOWN" in found.error


def test_the_budget_reaches_the_client():
    found = LayerRegistry("user", grand_challenge_layers()).inspect(max_layer_bytes=10).user_files
    assert found.error_reason == users.BUDGET_REASON and "more than the 10 compressed layer bytes" in found.error


def test_an_image_failing_anyway_downloads_no_layer():
    fake = LayerRegistry("user", grand_challenge_layers())
    config = json.dumps({"architecture": "arm64", "os": "linux", "config": {"User": "user", "Entrypoint": ["/run"]}}).encode()
    manifest = json.loads(fake.manifest)
    manifest["config"].update(digest=sha(config), size=len(config))
    fake.blobs[sha(config)] = config
    fake.manifest = json.dumps(manifest).encode()
    info = fake.inspect()
    assert info.user_files is None
    assert [p for p in fake.requests if "/blobs/" in p] == [f"/v2/team/algo/blobs/{sha(config)}"]


# --- status and pods ------------------------------------------------------------------------------


def info_for(user: str, files: users.UserFiles | None) -> images.ManifestInfo:
    config = {"architecture": "amd64", "os": "linux", "config": {"User": user, "Entrypoint": ["/run"]}}
    return images.ManifestInfo(manifest_digest=DIGEST, pinned_image=f"reg.example/algo@{DIGEST}", config=config,
                               config_digest="sha256:" + "c" * 64, size=10, user_files=files)  # fmt: skip


def decide(user: str, files: users.UserFiles | None = FILES) -> dict:
    return images.decide_image_status({"image": "reg.example/algo:1"}, {}, info_for(user, files), 1, NOW)


def test_a_resolved_name_is_recorded_in_status():
    status = decide("user")
    assert status["importStatus"] == "Completed"
    assert (status["user"], status["runAsUser"], status["runAsGroup"]) == ("user", 999, 999)
    assert "uid 999 gid 999" in status["message"]
    ComponentImageStatus.model_validate({k: v for k, v in status.items() if v is not None})


def test_numeric_users_are_recorded_as_they_are():
    status = decide("1000", None)
    assert (status["runAsUser"], status["runAsGroup"]) == (1000, None)
    status = decide("1001:1002", None)
    assert (status["runAsUser"], status["runAsGroup"]) == (1001, 1002)


def test_a_name_for_uid_zero_is_refused_as_root():
    status = decide("toor")
    assert status["importStatus"] == "Failed" and status["message"] == images.ROOT_USER_MESSAGE
    assert get_condition(status["conditions"], "Ready")["reason"] == "RootUser"
    assert status["runAsUser"] is None


def test_an_unknown_name_fails_with_the_message():
    status = decide("nobody-here")
    assert status["importStatus"] == "Failed" and status["isManifestValid"] is False
    assert status["message"].startswith("config.User 'nobody-here' names the user 'nobody-here', but /etc/passwd in the image has no such user")
    cond = get_condition(status["conditions"], "Ready")
    assert (cond["status"], cond["reason"]) == ("False", "UnknownUser")
    assert cond["message"] == status["message"]  # not "config.User is ...: config.User ..."
    assert status["runAsUser"] is None


def test_a_search_over_budget_fails_naming_the_bound():
    files = users.UserFiles(error="searching the image's layers for /etc/passwd read more than the 10 compressed layer bytes allowed",
                            error_reason=users.BUDGET_REASON)  # fmt: skip
    status = decide("user", files)
    assert status["importStatus"] == "Failed"
    assert get_condition(status["conditions"], "Ready")["reason"] == users.BUDGET_REASON
    assert "more than the 10 compressed layer bytes" in status["message"]


CONFIG = OperatorConfig()


def pod_ids(image_status: dict) -> dict:
    img = image_object()
    img["status"].update({k: v for k, v in image_status.items() if v is not None})
    security = build_pod(job(), img, 0, [], CONFIG)["spec"]["securityContext"]
    return {k: security[k] for k in ("runAsUser", "runAsGroup") if k in security}


def test_pods_run_as_the_recorded_ids():
    assert pod_ids({"user": "user", "runAsUser": 999, "runAsGroup": 999}) == {"runAsUser": 999, "runAsGroup": 999}
    assert pod_ids({"user": "1000", "runAsUser": 1000, "runAsGroup": None}) == {"runAsUser": 1000}


def test_pods_of_images_inspected_before_keep_the_old_fallback():
    assert pod_ids({"user": "user", "runAsUser": None, "runAsGroup": None}) == {"runAsUser": CONFIG.default_run_as_user}
    assert pod_ids({"user": "1001:1002", "runAsUser": None, "runAsGroup": None}) == {"runAsUser": 1001, "runAsGroup": 1002}

