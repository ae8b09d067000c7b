"""The Thrift structs osqueryd's IDL defines, for the server and manager code beside ``_wire``.

This is the one door to the generated bindings: code outside ``_wire`` imports these names
from here, never from ``_gen``.
"""

from osqsdk.extension._wire._gen.ttypes import (
    ExtensionCode,
    ExtensionException,
    ExtensionResponse,
    ExtensionStatus,
    InternalExtensionInfo,
    InternalOptionInfo,
)

__all__ = ["ExtensionCode", "ExtensionException", "ExtensionResponse", "ExtensionStatus",
           "InternalExtensionInfo", "InternalOptionInfo"]
