"""crmload: migrate data into Microsoft Dynamics CRM over SOAP without exhausting ephemeral ports."""

from __future__ import annotations

import logging

from crmload.auth import Basic, Bearer, ClientCredentials, Negotiate, Ntlm, Secret
from crmload.budget import DEFAULT_PORT_BUDGET, PortBudget
from crmload.client import CrmClient
from crmload.errors import (
    AuthenticationError,
    BatchTooLargeError,
    CircuitOpenError,
    ConfigError,
    ConnectError,
    CrmFault,
    CrmLoadError,
    DuplicateRecord,
    EncodingError,
    InputError,
    InvalidArgument,
    ItemNotRunError,
    JournalError,
    MappingError,
    NotAppliedError,
    PortExhaustedError,
    PreflightError,
    PrivilegeDenied,
    ProtocolError,
    RecordNotFound,
    RequiredFieldMissing,
    ResponseLostError,
    RetryExhaustedError,
    RunLevelError,
    ServerBusyError,
    ServiceProtectionError,
    SourceError,
    TlsError,
    TokenError,
    TransportError,
)
from crmload.load import Loader
from crmload.metadata import EntityMeta, Metadata, load_metadata
from crmload.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from crmload.server_limits import DEFAULT_SERVER_LIMITS, ServerLimits
from crmload.soap.codec2007 import WhoAmI
from crmload.throttle import DEFAULT_RATE_LIMIT, RateLimit
from crmload.transport import DEFAULT_TIMEOUT, PoolLimits, Timeout
from crmload.types import AltKey, Customer, Key, Lookup, Money, MultiPicklist, Owner, Picklist, Status

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PORT_BUDGET",
    "DEFAULT_RATE_LIMIT",
    "DEFAULT_RETRY_POLICY",
    "DEFAULT_SERVER_LIMITS",
    "DEFAULT_TIMEOUT",
    "AltKey",
    "AuthenticationError",
    "Basic",
    "BatchTooLargeError",
    "Bearer",
    "CircuitOpenError",
    "ClientCredentials",
    "ConfigError",
    "ConnectError",
    "CrmClient",
    "CrmFault",
    "CrmLoadError",
    "Customer",
    "DuplicateRecord",
    "EncodingError",
    "EntityMeta",
    "InputError",
    "InvalidArgument",
    "ItemNotRunError",
    "JournalError",
    "Key",
    "Loader",
    "Lookup",
    "MappingError",
    "Metadata",
    "Money",
    "MultiPicklist",
    "Negotiate",
    "NotAppliedError",
    "Ntlm",
    "Owner",
    "Picklist",
    "PoolLimits",
    "PortBudget",
    "PortExhaustedError",
    "PreflightError",
    "PrivilegeDenied",
    "ProtocolError",
    "RateLimit",
    "RecordNotFound",
    "RequiredFieldMissing",
    "ResponseLostError",
    "RetryExhaustedError",
    "RetryPolicy",
    "RunLevelError",
    "Secret",
    "ServerBusyError",
    "ServerLimits",
    "ServiceProtectionError",
    "SourceError",
    "Status",
    "Timeout",
    "TlsError",
    "TokenError",
    "TransportError",
    "WhoAmI",
    "__version__",
    "load_metadata",
]

# The library stays silent unless the application configures logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())
