"""crmload: migrate data into Microsoft Dynamics CRM over SOAP without exhausting ephemeral ports."""

from __future__ import annotations

import logging

from crmload.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    CrmFault,
    CrmLoadError,
    DuplicateRecord,
    EncodingError,
    InputError,
    InvalidArgument,
    JournalError,
    MappingError,
    PortExhaustedError,
    PrivilegeDenied,
    ProtocolError,
    RecordNotFound,
    RequiredFieldMissing,
    ResponseLostError,
    RetryExhaustedError,
    ServerBusyError,
    SourceError,
    TransportError,
)

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConnectError",
    "CrmFault",
    "CrmLoadError",
    "DuplicateRecord",
    "EncodingError",
    "InputError",
    "InvalidArgument",
    "JournalError",
    "MappingError",
    "PortExhaustedError",
    "PrivilegeDenied",
    "ProtocolError",
    "RecordNotFound",
    "RequiredFieldMissing",
    "ResponseLostError",
    "RetryExhaustedError",
    "ServerBusyError",
    "SourceError",
    "TransportError",
    "__version__",
]

# The library stays silent unless the application configures logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())
