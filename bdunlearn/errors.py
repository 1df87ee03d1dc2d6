"""Exceptions that end a run with one readable line instead of a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad value, missing file, unknown name).

    The message is shown as is, on one line, and should say how to fix it.
    """


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""

    def __init__(self, stage: str, step: int):
        super().__init__(f"{stage}: loss became NaN/inf at step {step}; lower the learning rate")
        self.stage = stage
        self.step = step


def message_of(check, *args) -> str | None:
    """The one-line message of the UserError ``check(*args)`` raises, or None when it passes."""
    try:
        check(*args)
    except UserError as exc:
        return str(exc)
    return None
