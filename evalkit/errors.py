"""Errors a user can cause and fix. The CLI prints them as one line and exits non-zero."""


class EvalkitError(Exception):
    """Base class: the message is the whole story, so no traceback is shown."""

    exit_code = 2


class ConfigError(EvalkitError):
    """A bad override, unknown config name or invalid value."""


class ModelError(EvalkitError):
    """A missing, unreadable or corrupt GGUF, or a model that cannot be fetched."""


class TaskError(EvalkitError):
    """A task file that does not load: bad YAML, unknown check, missing field."""


class BackendError(EvalkitError):
    """The backend cannot do what was asked (unreachable server, unsupported feature)."""
