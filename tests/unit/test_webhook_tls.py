"""The in-cluster webhook's certificates: made, kept, and replaced for the right reasons."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
from cryptography import x509

from component_operator.adapters import webhook_tls as tls

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
NAMES = tls.dns_names("co-webhook", "co-system")


@pytest.fixture(scope="module")
def bundle() -> tls.Bundle:
    return tls.renew(None, NAMES, NOW)


def test_names_are_those_the_api_server_dials():
    assert NAMES[0] == "co-webhook.co-system.svc"
    assert "co-webhook.co-system.svc.cluster.local" in NAMES


def test_a_fresh_bundle_needs_nothing(bundle):
    assert tls.renewal_reason(bundle, NAMES, NOW) is None
    assert tls.renewal_reason(None, NAMES, NOW) == "no certificate yet"


def test_the_pair_verifies_with_the_ca(bundle, tmp_path):
    (tmp_path / "tls.crt").write_bytes(bundle.cert)
    (tmp_path / "tls.key").write_bytes(bundle.key)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")  # key matches the certificate
    cert = x509.load_pem_x509_certificate(bundle.cert)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(bundle.ca_cert))
    assert cert.not_valid_after_utc - NOW <= tls.CERT_LIFETIME


def test_renewed_when_a_third_of_the_lifetime_is_left(bundle):
    later = NOW + tls.CERT_LIFETIME * (1 - tls.RENEW_FRACTION) + dt.timedelta(days=1)
    reason = tls.renewal_reason(bundle, NAMES, later)
    assert reason and reason.startswith("the certificate expires")
    renewed = tls.renew(bundle, NAMES, later)
    assert renewed.ca_cert == bundle.ca_cert  # the CA is kept: the caBundle does not change
    assert tls.renewal_reason(renewed, NAMES, later) is None


def test_renewed_when_the_service_name_changes(bundle):
    other = tls.dns_names("other", "co-system")
    assert "the Service needs" in tls.renewal_reason(bundle, other, NOW)


def test_a_certificate_from_another_ca_is_replaced(bundle):
    foreign = tls.renew(None, NAMES, NOW)
    mixed = tls.Bundle(ca_cert=bundle.ca_cert, ca_key=bundle.ca_key, cert=foreign.cert, key=foreign.key)
    assert tls.renewal_reason(mixed, NAMES, NOW) == "the certificate was not issued by the CA in the Secret"


def test_garbage_in_the_secret_is_replaced():
    junk = tls.Bundle(ca_cert=b"junk", ca_key=b"junk", cert=b"junk", key=b"junk")
    assert tls.renewal_reason(junk, NAMES, NOW).startswith("unreadable")
    assert tls.renewal_reason(tls.renew(junk, NAMES, NOW), NAMES, NOW) is None


def test_ca_rotation_keeps_the_old_ca_in_the_bundle(bundle):
    late = NOW + tls.CA_LIFETIME * (1 - tls.RENEW_FRACTION) + dt.timedelta(days=1)
    assert tls.renewal_reason(bundle, NAMES, late).startswith("the CA expires")
    rotated = tls.renew(bundle, NAMES, late)
    assert rotated.ca_cert != bundle.ca_cert and rotated.previous_cas == bundle.ca_cert
    cas = x509.load_pem_x509_certificates(rotated.ca_bundle(late))
    assert len(cas) == 2  # old replicas' certificates still verify until the old CA expires
    assert len(x509.load_pem_x509_certificates(rotated.ca_bundle(late + tls.CA_LIFETIME))) == 1


def test_secret_round_trip(bundle):
    data = tls.secret_data(bundle)
    assert set(data) == set(tls.KEYS)
    assert tls.bundle_from_secret({"data": data}) == bundle
    assert tls.bundle_from_secret({"data": {"tls.crt": data["tls.crt"]}}) is None
    assert tls.bundle_from_secret(None) is None
