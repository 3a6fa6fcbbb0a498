"""TLS for the in-cluster admission webhook: a CA and a serving certificate the operator makes,
keeps in one Secret shared by its replicas, rotates, and publishes as the webhook's caBundle.

Why the operator does it itself (cert-manager stays an option, see the chart's
``certManager.enabled``): an install must work on a bare cluster, and a Helm hook or a chart that
renders a caBundle leaves GitOps tools permanently out of sync. The chart ships the
ValidatingWebhookConfiguration without a caBundle; the operator patches only that field.

Lifetimes and bounds: the CA is valid for 10 years, the serving certificate for 1 year. Either is
replaced when less than a third of its lifetime remains, when its DNS names do not match the
Service, or when the pair does not verify. Every replica checks once an hour
(``CHECK_INTERVAL_SECONDS``); writes use the Secret's resourceVersion, so two replicas racing to
rotate end up with one winner whose certificate both serve. kopf's webhook server re-reads the
files it serves every minute and restarts its listener when they changed. When the CA itself is
replaced, the caBundle carries the old and the new CA until the old one expires, so no replica
serving the previous certificate is refused in between.

The certificate logic below is pure (no I/O); ``ensure`` does the Kubernetes and file I/O.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import kube

log = logging.getLogger("component_operator.webhook_tls")

CA_LIFETIME = dt.timedelta(days=3650)
CERT_LIFETIME = dt.timedelta(days=365)
RENEW_FRACTION = 1 / 3
CHECK_INTERVAL_SECONDS = 3600.0
#: Secret keys: tls.crt/tls.key as in kubernetes.io/tls Secrets, plus the CA that signed them.
KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key")
#: Old CAs kept in the bundle after a CA rotation (until they expire).
PREVIOUS_CAS = "ca-previous.crt"


@dataclass(frozen=True)
class Bundle:
    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes
    previous_cas: bytes = b""

    def ca_bundle(self, now: dt.datetime) -> bytes:
        """The PEM bundle for caBundle: the current CA and older ones that have not expired."""
        kept = [c for c in _load_all(self.previous_cas) if c.not_valid_after_utc > now]
        return self.ca_cert + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in kept)


def dns_names(service: str, namespace: str) -> list[str]:
    """The names the API server uses to reach a webhook Service."""
    return [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local", f"{service}.{namespace}", service]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _load_all(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem) if pem.strip() else []


def make_ca(now: dt.datetime, common_name: str = "component-operator-webhook-ca") -> tuple[bytes, bytes]:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def issue(ca_cert_pem: bytes, ca_key_pem: bytes, names: list[str], now: dt.datetime) -> tuple[bytes, bytes]:
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = _key()
    not_after = min(now + CERT_LIFETIME, ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def _expiring(cert: x509.Certificate, lifetime: dt.timedelta, now: dt.datetime) -> bool:
    return cert.not_valid_after_utc - now < lifetime * RENEW_FRACTION


def renewal_reason(bundle: Bundle | None, names: list[str], now: dt.datetime) -> str | None:
    """Why ``bundle`` must be replaced for these DNS names at ``now``; None when it is fine."""
    if bundle is None:
        return "no certificate yet"
    try:
        ca = x509.load_pem_x509_certificate(bundle.ca_cert)
        cert = x509.load_pem_x509_certificate(bundle.cert)
        serialization.load_pem_private_key(bundle.ca_key, password=None)
        key = serialization.load_pem_private_key(bundle.key, password=None)
    except ValueError as err:
        return f"unreadable certificate or key: {err}"
    if _expiring(ca, CA_LIFETIME, now):
        return f"the CA expires at {ca.not_valid_after_utc.isoformat()}"
    if _expiring(cert, CERT_LIFETIME, now):
        return f"the certificate expires at {cert.not_valid_after_utc.isoformat()}"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "the certificate was not issued by the CA in the Secret"
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        return "the key does not match the certificate"
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        sans = []
    if sorted(sans) != sorted(names):
        return f"the certificate names {sorted(sans)}, the Service needs {sorted(names)}"
    return None


def renew(bundle: Bundle | None, names: list[str], now: dt.datetime) -> Bundle:
    """A bundle that passes ``renewal_reason``: the CA is kept while it is sound and not expiring."""
    ca_cert, ca_key, previous = (bundle.ca_cert, bundle.ca_key, bundle.previous_cas) if bundle else (b"", b"", b"")
    try:
        ca_ok = bool(ca_cert) and not _expiring(x509.load_pem_x509_certificate(ca_cert), CA_LIFETIME, now)
        serialization.load_pem_private_key(ca_key, password=None) if ca_ok else None
    except ValueError:
        ca_ok = False
    if not ca_ok:
        previous = ca_cert if ca_cert.strip().startswith(b"-----BEGIN CERTIFICATE") else b""
        ca_cert, ca_key = make_ca(now)
    cert, key = issue(ca_cert, ca_key, names, now)
    return Bundle(ca_cert=ca_cert, ca_key=ca_key, cert=cert, key=key, previous_cas=previous)


def bundle_from_secret(secret: dict | None) -> Bundle | None:
    data = (secret or {}).get("data") or {}
    if not all(data.get(k) for k in KEYS):
        return None
    raw = {k: base64.b64decode(v) for k, v in data.items()}
    return Bundle(ca_cert=raw["ca.crt"], ca_key=raw["ca.key"], cert=raw["tls.crt"], key=raw["tls.key"],
                  previous_cas=raw.get(PREVIOUS_CAS, b""))


def secret_data(bundle: Bundle) -> dict[str, str]:
    values = {"ca.crt": bundle.ca_cert, "ca.key": bundle.ca_key, "tls.crt": bundle.cert, "tls.key": bundle.key}
    if bundle.previous_cas:
        values[PREVIOUS_CAS] = bundle.previous_cas
    return {k: base64.b64encode(v).decode() for k, v in values.items()}


@dataclass(frozen=True)
class Target:
    namespace: str
    secret: str
    service: str
    configuration: str | None
    directory: Path

    @property
    def certfile(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def keyfile(self) -> Path:
        return self.directory / "tls.key"


async def ensure(target: Target, attempts: int = 5) -> Bundle:
    """Make the Secret hold a sound bundle, write the files kopf serves, publish the caBundle.

    Bounded: a conflict (another replica wrote first) re-reads, at most ``attempts`` times.
    """
    names = dns_names(target.service, target.namespace)
    for _ in range(attempts):
        now = dt.datetime.now(dt.timezone.utc)
        secret = await kube.get_secret(target.namespace, target.secret)
        bundle = bundle_from_secret(secret)
        reason = renewal_reason(bundle, names, now)
        if reason is None:
            break
        log.info("webhook certificate in %s/%s: renewing (%s)", target.namespace, target.secret, reason)
        bundle = renew(bundle, names, now)
        try:
            await kube.put_secret(target.namespace, target.secret, secret_data(bundle), "kubernetes.io/tls",
                                  resource_version=((secret or {}).get("metadata") or {}).get("resourceVersion"))
            break
        except kube.TemporaryError as err:  # 409: another replica wrote it; read theirs
            log.info("webhook certificate: %s; reading it again", err)
    else:
        raise kube.TemporaryError(f"webhook certificate Secret {target.namespace}/{target.secret}: "
                                  f"still conflicting after {attempts} attempts", delay=10.0)
    assert bundle is not None
    _write_files(target, bundle)
    if target.configuration:
        await kube.patch_webhook_ca_bundle(target.configuration, bundle.ca_bundle(dt.datetime.now(dt.timezone.utc)))
    return bundle


def _write_files(target: Target, bundle: Bundle) -> None:
    """Atomic replacements, and only when the content changed (kopf restarts its server on change)."""
    target.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path, content in ((target.keyfile, bundle.key), (target.certfile, bundle.cert)):
        if path.exists() and path.read_bytes() == content:
            continue
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        tmp.replace(path)
