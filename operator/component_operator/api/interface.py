"""ComponentInterface: a typed input/output socket (cluster-scoped, as on grand-challenge).

grand-challenge field -> here: title, description, kind, relative_path -> relativePath,
store_in_database -> storeInDatabase, default_value -> defaultValue, schema, overlay_segments
-> overlaySegments, look_up_table -> lookUpTable, slug -> metadata.name, the per-interface
example value (ComponentInterfaceExampleValue) -> exampleValue, super_kind -> status.superKind.

Structural rules (lengths, path shape, segment shape) live here as schema and CEL so the API
server enforces them even without the operator; the rules that need the kind catalogue run
in ``kinds.interface_rules`` (webhook and reconcile).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Condition, JsonObject, JsonValue, Model, StatusModel, cel, validations


class OverlaySegment(Model):
    """One labelled voxel value of a segmentation overlay."""

    voxel_value: int = Field(ge=0)
    """Voxel value the segment is drawn for; with the implicit 0 the values must be contiguous."""
    name: str = Field(min_length=1, max_length=255)
    """Label shown for the segment."""
    visible: bool
    """Whether the segment is visible by default."""


class ComponentInterfaceSpec(Model):
    """Desired state of a ComponentInterface (a socket)."""

    model_config = Model.model_config | {
        "json_schema_extra": validations(
            cel(
                "!has(self.overlaySegments) || size(self.overlaySegments) == 0 || "
                "self.kind == 'Segmentation' || self.kind.upperAscii() == 'SEG'",
                "Overlay segments should only be set for segmentations",
                field_path=".overlaySegments",
            ),
            cel(
                "!(self.kind == 'Segmentation' || self.kind.upperAscii() == 'SEG') || "
                "(has(self.overlaySegments) && size(self.overlaySegments) > 0)",
                "Overlay segments must be set for this interface",
                field_path=".overlaySegments",
            ),
        )
    }

    kind: str = Field(min_length=1, max_length=64)
    """Interface kind, by grand-challenge's label ("2D bounding box", "Multiple points", "Heat Map",
    "CSV file (legacy)" ...) or its short code ("2DBB", "MPOI", "HMAP", "CSV" ...)."""
    relative_path: str = Field(
        min_length=1,
        max_length=255,
        json_schema_extra=validations(
            cel("!self.startsWith('/') && !self.endsWith('/')", "Path must not begin or end with '/'"),
            cel("!self.split('/').exists(p, p == '..')", "Relative paths are not allowed."),
            cel("self.lowerAscii() != 'inputs.json'", "This relative path is reserved"),
        ),
    )
    """Path of the value below /input (inputs) or /output (outputs): JSON kinds end with .json,
    image kinds are directories under images/, file kinds end with their extension."""
    title: str | None = Field(default=None, max_length=255)
    """Human readable title; defaults to metadata.name."""
    description: str = Field(default="", max_length=4096)
    """Help text for people providing values."""
    store_in_database: bool = True
    """Store values inline (in the job's status) instead of as files; only for JSON kinds that allow it."""
    schema_: JsonObject = Field(default_factory=dict, alias="schema")
    """Extra JSON Schema (draft 3, 4, 6 or 7) AND-ed with the kind's built-in schema."""
    overlay_segments: list[OverlaySegment] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra=validations(
            cel(
                "self.all(s, self.exists_one(t, t.voxelValue == s.voxelValue))",
                "voxel values of overlay segments must be unique",
            ),
            cel(
                "self.all(s, s.voxelValue <= (self.exists(t, t.voxelValue == 0) ? size(self) - 1 : size(self)))",
                "Voxel values for overlay segments must be contiguous.",
            ),
        ),
    )
    """Segments of a Segmentation interface; may only be extended once values exist."""
    look_up_table: str | None = Field(default=None, max_length=253)
    """Name of the colour look-up table used to display overlays."""
    example_value: JsonValue = None
    """Example value shown to people; JSON kinds only; must be valid for the interface."""
    default_value: JsonValue = None
    """Value used for an input that a job leaves out; not allowed for file and image interfaces."""


SuperKindName = Literal["Image", "Value", "File"]


class ComponentInterfaceStatus(StatusModel):
    """Observed state of a ComponentInterface."""

    super_kind: SuperKindName | None = None
    """Image for image kinds, Value for JSON kinds stored in the database, File otherwise."""
    kind_code: str | None = None
    """grand-challenge's short code of the kind (2DBB, MPOI ...)."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready: True when every interface rule passes, with the first failing rule as message otherwise."""
    observed_generation: int | None = None
    """The metadata.generation the status was computed for."""
    in_use: bool = False
    """True once a job used the interface; overlay segments can then only be extended."""
    overlay_segments_in_use: list[OverlaySegment] | None = None
    """The overlay segments recorded when the interface was first used."""
    kopf: JsonObject | None = None
    """The operator's own bookkeeping (handler progress, the last handled spec), kept here so
    that it never writes annotations on your object."""
