"""The local test environment (a package only so that tests can import testenv.images.oci)."""
