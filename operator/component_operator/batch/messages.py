"""The runner's log messages: django-analyses' ``runner/messages.py``, in its words.

Every constant keeps the name and the text of its django-analyses counterpart, so a runner ported
from there logs what its users know, with three changes: no ANSI colour codes (logs end up in
files and CI output, where escape codes are noise); "database" reads "dataset" (the data is any
iterable here); and the execution messages name the ComponentBatch they started. Placeholders
that django-analyses fills in (``{analysis_version}``, ``{model_name}``, ``{n_instances}`` ...) are
still filled in, so overridden messages copied from a django-analyses runner keep working:
``{analysis_version}`` is the ComponentImage's name, ``{model_name}`` the runner's DATA_NAME.
"""

from __future__ import annotations

#: Batch run start message.
BATCH_RUN_START = "{analysis_version}: Batch Execution"

#: Base queryset generation message.
BASE_QUERY_START = "Querying {model_name} instances..."

#: Base queryset generation result.
BASE_QUERY_END = "{n_instances} instances found."

#: Report querying the default execution queryset.
DEFAULT_QUERYSET_QUERY = "\n🔎 Default execution queryset generation:"

#: Report the successful creation of the batch that executes the inputs.
EXECUTION_STARTED = (
    "\n🚀Successfully started {analysis_version} execution over {n_instances} {model_name} instances🚀"
    "\nComponentBatch {namespace}/{batch_name}"
)

#: Report a batch that already held exactly these inputs (a repeated run: nothing new was started).
EXECUTION_UNCHANGED = (
    "\nComponentBatch {namespace}/{batch_name} already runs {analysis_version} over these {n_instances} "
    "{model_name} instances; nothing new was started."
)

#: Report what a dry run would have started (django-analyses logs EXECUTION_STARTED instead).
EXECUTION_DRY_RUN = (
    "\nDry run: would have started {analysis_version} execution over {n_instances} {model_name} instances"
    "\nas ComponentBatch {namespace}/{batch_name}; nothing was created."
)

#: Filter queryset start.
FILTER_QUERYSET_START = "Filtering queryset..."

#: Report filter result.
FILTER_QUERYSET_END = "{n_candidates} execution candidates found."

#: Report starting to generate input specifications for execution.
INPUT_GENERATION = "\n🔀 Generating input specifications:"

#: Report the number of input specifications generated.
INPUT_GENERATION_FINISHED = "{n_inputs} input specifications prepared."

#: Report querying existing runs.
INPUT_QUERY_START = "Querying existing runs..."

#: Report the number of existing runs.
INPUT_QUERY_END = "{n_existing} runs found."

#: Report validating a provided queryset.
INPUT_QUERYSET_VALIDATION = "\n🔎 Input queryset validation:"

#: No pending instances were detected in the default dataset.
NONE_PENDING = "Congratulations! No pending {model_name} instances were detected in the dataset 👏"

#: No pending instances were detected in the provided queryset.
NONE_PENDING_IN_QUERYSET = "All {n_instances} provided {model_name} instances have been processed already 👑"

#: No candidates in the execution queryset.
NO_CANDIDATES = "No execution candidates detected in {model_name} queryset!"

#: Report pending instances.
PENDING_FOUND = "{n_existing} existing runs found.\n{n_pending} instances pending execution."

#: Report starting a queryset existing/pending split.
PENDING_QUERY_START = (
    "\n⚖  Checking execution status for the {queryset_description} queryset:\n"
    "Filtering existing runs...\n(large querysets might take a few moments to be evaluated)"
)

#: General input preprocessing failure message.
PREPROCESSING_FAILURE = "Failed to preprocess {model_name} #{instance_id}!"

#: Report the number of preprocessing failures encountered.
PREPROCESSING_FAILURE_REPORT = "{n_invalid} of {n_total} {model_name} instances failed to be preprocessed for input generation."
