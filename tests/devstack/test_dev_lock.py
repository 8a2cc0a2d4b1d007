"""One embedded stack per state folder: a second `syncbus dev` there is refused in a sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncbus_devstack import StackError
from syncbus_devstack.dev import lock_state_dir


def test_a_second_stack_on_the_same_state_folder_is_refused_until_the_first_lets_go(
    tmp_path: Path,
):
    first = lock_state_dir(tmp_path)
    with pytest.raises(StackError, match="another syncbus dev is using"):
        lock_state_dir(tmp_path)
    first.close()
    lock_state_dir(tmp_path).close()  # free again


def test_stacks_on_different_state_folders_do_not_stand_in_each_others_way(tmp_path: Path):
    a = lock_state_dir(tmp_path / "a")
    b = lock_state_dir(tmp_path / "b")
    a.close()
    b.close()
