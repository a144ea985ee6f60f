"""Publishing: a run's outputs as a Hugging Face dataset folder, and pushing it (DESIGN §10)."""

from pipeline.publish.assign import PublishError
from pipeline.publish.counts import ReleaseCounts
from pipeline.publish.folder import Published, build_dataset_folder, newest_run, publish_run
from pipeline.publish.push import PushError, PushResult, push_folder
from pipeline.publish.rows import (
    instance_to_row,
    rejection_to_row,
    row_to_instance,
    row_to_rejection,
    row_to_task,
    task_to_row,
)
from pipeline.publish.version import check_version

__all__ = [
    "PublishError",
    "Published",
    "PushError",
    "PushResult",
    "ReleaseCounts",
    "build_dataset_folder",
    "check_version",
    "instance_to_row",
    "newest_run",
    "publish_run",
    "push_folder",
    "rejection_to_row",
    "row_to_instance",
    "row_to_rejection",
    "row_to_task",
    "task_to_row",
]
