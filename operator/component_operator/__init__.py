"""component-operator: grand-challenge components as Kubernetes custom resources."""

__version__ = "0.1.0"

GROUP = "components.grand-challenge.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
