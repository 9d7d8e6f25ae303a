"""Exception types raised by hgn_pyg.

Every error meant for a user derives from :class:`HGNError` (and from
:class:`ValueError`, so generic ``except ValueError`` code keeps working).
The command-line tools catch :class:`HGNError`, print its message as one line
and exit with status 2; ``--debug`` shows the traceback instead.
"""


class HGNError(ValueError):
    """Base class of all user-facing hgn_pyg errors."""


class ConfigError(HGNError):
    """A configuration file or override is invalid (names the file and key)."""


class DataError(HGNError):
    """A data file is missing, malformed or inconsistent (names the file and key)."""


class CheckpointError(HGNError):
    """A checkpoint does not match the model (names the keys and shapes)."""


class GraphError(HGNError):
    """A mesh or graph cannot be used (names the offending vertices/faces)."""


__all__ = ["HGNError", "ConfigError", "DataError", "CheckpointError", "GraphError"]
