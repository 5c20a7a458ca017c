"""The transfer task protocol: one object per task, found again by name, and no task-name branches elsewhere."""

from __future__ import annotations

import re

import pytest

from scripts.transfer import TASK_TYPES, GradeTask, SubtypingTask, SurvivalTask, as_task, task_from_info
from tests.support.bundle_runs import REPO_ROOT

#: ``task == "survival"``, ``"subtyping" != x``, ``if task in (...)``, ``resolve_slide_table('subtyping', ...)``,
#: ``isinstance(outputs, SurvivalOutputs)``
BRANCH = re.compile(r"""(==|!=)\s*["'](subtyping|survival|grade)["']|["'](subtyping|survival|grade)["']\s*(==|!=)"""
                    r"""|\bif\b[^\n#]*\btask\b[^\n#]*\b(==|!=|in)\b|\(\s*["'](subtyping|survival)["']\s*,"""
                    r"""|isinstance\([^)]*(Survival|Subtyping|ClassTargets|GradeTask)""")


def test_no_task_name_branches_outside_the_task_classes():
    files = [*(REPO_ROOT / "scripts" / "transfer").rglob("*.py"), *(REPO_ROOT / "scripts" / "serving").rglob("*.py"),
             *(REPO_ROOT / "scripts" / "transfer").rglob("*.json"), *(REPO_ROOT / "bundle").rglob("*.json")]
    found = [f"{path.relative_to(REPO_ROOT)}:{n}: {line.strip()}" for path in files
             if not path.name.startswith("task")
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if BRANCH.search(line)]
    assert len(files) > 40 and found == []


def test_each_task_is_found_again_from_its_saved_model_info():
    assert {"subtyping", "survival", "grade"} <= set(TASK_TYPES)
    assert task_from_info({"task": "subtyping", "classes": ["b", "a"]}) == SubtypingTask(classes=["b", "a"])
    assert task_from_info({"task": "grade", "classes": ["low", "high"]}) == GradeTask()
    info = {"task": "survival", "n_bins": 3, "alpha": 0.2, "time_unit": "days", "network": {"num_outputs": 3}}
    assert task_from_info(info) == SurvivalTask(n_bins=3, alpha=0.2, time_unit="days")


def test_unknown_tasks_and_options_are_refused_by_name():
    with pytest.raises(ValueError, match=r"models/x: model_info.json task 'grading', expected one of \['grade'"):
        task_from_info({"task": "grading"}, "models/x")
    with pytest.raises(ValueError, match=r"the survival task has no option\(s\) \['classes'\]"):
        as_task("survival", classes=["a"])
    assert as_task(SurvivalTask(), n_bins=2, alpha=None) == SurvivalTask(n_bins=2)
