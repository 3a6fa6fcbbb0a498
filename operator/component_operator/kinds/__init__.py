"""Interface kinds and their values: the typed-value core of the operator (pure Python).

grand-challenge types every input and output of an algorithm by an interface *kind* (40 of
them: JSON values such as "2D bounding box", images such as "Segmentation", files such as
"PDF file"). This package is that type system: the catalogue (``catalog``), the built-in
JSON Schemas and examples (``schemas``), value validation with grand-challenge's messages
(``values``), the ComponentInterface rules (``interface_rules``), file content checks
(``files``) and image content checks (``images``). Nothing here talks to Kubernetes.

User-supplied schemas and values are evaluated within bounds: regular expressions on RE2
(``regex``, ``dialects``), nesting depth limited (``limits``), and the CPU-heavy checks in
worker processes with time and memory budgets (``sandbox.ValidationPool``).
"""

from __future__ import annotations

from .catalog import (
    FILE_KINDS,
    IMAGE_KINDS,
    JSON_KINDS,
    KINDS,
    KINDS_BY_CODE,
    KINDS_BY_LABEL,
    Kind,
    KindGroup,
    SuperKind,
    resolve_kind,
    super_kind,
)
from .custom_schema import check_custom_schema
from .errors import (
    BudgetExceededError,
    FileContentError,
    ImageContentError,
    InterfaceRuleError,
    InvalidSchemaError,
    LimitExceededError,
    RegexNeedsSandboxError,
    UnknownKindError,
    ValueValidationError,
)
from .limits import MAX_NESTING_DEPTH
from .files import ALLOWED_FILE_EXTENSIONS, check_file_content, check_file_extension, parse_newick
from .images import ImageInfo, check_image_content, is_image_file, overlay_voxel_values
from .interface_rules import check_interface, check_overlay_segments_update, relative_path_errors
from .schemas import (
    INTERFACE_KIND_JSON_EXAMPLES,
    INTERFACE_VALUE_SCHEMA,
    VEGA_LITE_V5_URL,
    compose_schema,
    example_value,
    kind_schema,
)
from .values import is_valid_value, validate_value, value_required

#: One documented valid example per JSON kind code (read-only; use ``example_value`` for a copy).
EXAMPLE_VALUES = INTERFACE_KIND_JSON_EXAMPLES

__all__ = [
    "ALLOWED_FILE_EXTENSIONS",
    "EXAMPLE_VALUES",
    "FILE_KINDS",
    "IMAGE_KINDS",
    "INTERFACE_KIND_JSON_EXAMPLES",
    "INTERFACE_VALUE_SCHEMA",
    "JSON_KINDS",
    "KINDS",
    "KINDS_BY_CODE",
    "KINDS_BY_LABEL",
    "MAX_NESTING_DEPTH",
    "VEGA_LITE_V5_URL",
    "BudgetExceededError",
    "FileContentError",
    "ImageContentError",
    "ImageInfo",
    "InterfaceRuleError",
    "InvalidSchemaError",
    "Kind",
    "LimitExceededError",
    "RegexNeedsSandboxError",
    "KindGroup",
    "SuperKind",
    "UnknownKindError",
    "ValueValidationError",
    "check_custom_schema",
    "check_file_content",
    "check_file_extension",
    "check_image_content",
    "check_interface",
    "check_overlay_segments_update",
    "compose_schema",
    "example_value",
    "is_image_file",
    "is_valid_value",
    "kind_schema",
    "overlay_voxel_values",
    "parse_newick",
    "relative_path_errors",
    "resolve_kind",
    "super_kind",
    "validate_value",
    "value_required",
]
