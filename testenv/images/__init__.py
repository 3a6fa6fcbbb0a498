"""The testenv's own OCI images: oci.py writes them, build.py builds, pushes and imports them."""
