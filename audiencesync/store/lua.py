"""The run store's atomic steps: the Lua scripts beside this module, which Redis runs as one."""

from importlib.resources import files

_HERE = files(__package__)


def _script(name: str) -> str:
    return (_HERE / f"{name}.lua").read_text()


RELEASE_LOCK = _script("release_lock")  # a run's audience lock
REFRESH_LOCK = _script("refresh_lock")
STAGE_CHUNK = _script("stage_chunk")
FINISH_CHUNK = _script("finish_chunk")
MARK_STALLED = _script("mark_stalled")
REPLACE_FIRST = _script("replace_first")
REPLACE_TAKE = _script("replace_take")
REPLACE_SEQ = _script("replace_seq")
REPLACE_MAX = _script("replace_max")
