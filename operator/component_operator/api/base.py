"""Shared building blocks for the custom resource models.

The pydantic models in this package are the single source of truth for the CRDs: the
OpenAPI schemas in ``crds/`` are generated from them (see ``crdgen``), and the operator
parses every object it receives through them. Keeping both gates in one place is what
lets a test prove that admission and the operator agree.

Conventions enforced here:

* field names are camelCase on the wire (``relativePath``), snake_case in Python;
* free-form JSON (interface values, custom schemas) is typed ``JsonValue`` and becomes
  ``x-kubernetes-preserve-unknown-fields`` in the CRD;
* CEL rules are attached with ``cel(...)`` so they live next to the field they guard.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

#: Any JSON value (object, array, string, number, boolean or null).
JsonValue = Annotated[
    Any,
    WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True, "nullable": True}),
]

#: A JSON object whose keys are not known in advance (e.g. a JSON Schema).
JsonObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


def cel(rule: str, message: str, *, field_path: str | None = None, reason: str | None = None) -> dict:
    """One ``x-kubernetes-validations`` entry; message is what ``kubectl apply`` shows."""
    entry: dict[str, str] = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def validations(*rules: dict) -> dict:
    return {"x-kubernetes-validations": list(rules)}


class Model(BaseModel):
    """Base for every spec/status model: camelCase aliases, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it (aliases, no unset optionals)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StatusModel(Model):
    """Status is written by the operator; tolerate fields added by newer versions."""

    model_config = ConfigDict(extra="ignore")


class Condition(Model):
    """A ``metav1.Condition``: the latest observation of one aspect of the object."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(max_length=316, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$")
    """Type of condition in CamelCase, e.g. ``Ready``, ``InputsValid``, ``Succeeded``."""
    status: Literal["True", "False", "Unknown"]
    """Status of the condition: True, False or Unknown."""
    reason: str = Field(max_length=1024, min_length=1, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """Programmatic identifier of the last transition, e.g. ``InvalidInputs``, ``OOMKilled``."""
    message: str = Field(default="", max_length=32768)
    """Human readable message with details about the transition."""
    last_transition_time: datetime
    """When the condition last changed status."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The ``metadata.generation`` the condition was set for."""


class ObjectReference(Model):
    """A reference to a namespaced object by name (same namespace as the referrer)."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the referenced object."""
