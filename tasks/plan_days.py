"""Write ``online_days.yaml``: the online days of params.yaml that dvc.yaml's foreach runs over.

Runs as ``crossadapt plan-days``; rerun it after changing the split dates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from crossadapt.storage.atomic import atomic_write_text
from tasks.common import exit_with, layout_of, simple_step

if TYPE_CHECKING:
    from crossadapt.config.params import Params

HEADER = (
    "# Written by `crossadapt plan-days` from the split in params.yaml; do not edit.\n"
    "# Each online day starts from the checkpoints of the day before it.\n"
)


def plan(params: Params) -> dict[str, Any]:
    """Build the foreach items of dvc.yaml: each day (the stage key) and its input checkpoints.

    Keying by day names the DVC stages ``online_day@<day>``.
    """
    layout = layout_of(params)
    root = layout.root

    def relative(path) -> str:
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    items: dict[str, dict[str, str]] = {}
    previous_teacher = layout.teacher_checkpoint
    previous_student = layout.distilled_student_checkpoint
    for day in params.split.online_days():
        items[day] = {
            "teacher_in": relative(previous_teacher),
            "student_in": relative(previous_student),
        }
        previous_teacher = layout.online_day_dir(day) / "teacher.pt"
        previous_student = layout.online_day_dir(day) / "student.pt"
    return {
        "online_days": items,
        "last_online_day_dir": relative(layout.online_day_dir(list(items)[-1])),
    }


def run(params: Params) -> dict[str, Any]:
    """Write online_days.yaml next to params.yaml and return its content."""
    content = plan(params)
    atomic_write_text(
        params.project_root / "online_days.yaml",
        HEADER + yaml.safe_dump(content, sort_keys=False),
    )
    return {"online_days": len(content["online_days"])}


SUBCOMMAND, main = simple_step(
    "plan-days", "write online_days.yaml (the online days dvc.yaml iterates over)", run
)

if __name__ == "__main__":
    exit_with(main)
