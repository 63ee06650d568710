"""Short, specific exceptions raised by the core; the UI and the API turn them into messages."""


class StudioError(RuntimeError):
    """Base for errors whose message is meant for the user."""


class ModelError(StudioError):
    """A model is missing, unreadable or refused; the message says which and why."""


class GenerationInterrupted(StudioError):
    """The user interrupted a run."""
