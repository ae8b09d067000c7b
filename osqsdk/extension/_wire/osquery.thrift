// osqueryd's extension protocol, written for osqsdk from the field ids and names osquery
// 5.x uses (osquery/extensions/thrift/osquery.thrift). The wire format is what matters:
// Thrift `binary` and `string` are the same bytes on the wire, so the plugin request map
// carries `binary` values and osqsdk decodes them itself (non-UTF-8 bytes survive as
// surrogate escapes instead of being replaced by Thrift's codec).
//
// Regenerate the Python bindings with: osqsdk/_wire/regen.sh (needs thrift-compiler 0.17).

namespace py _gen
namespace cpp osquery.extensions

typedef map<string, binary> ExtensionPluginRequest
typedef list<map<string, string>> ExtensionPluginResponse
typedef i64 ExtensionRouteUUID
typedef map<string, ExtensionPluginResponse> ExtensionRouteTable
typedef map<string, ExtensionRouteTable> ExtensionRegistry

struct InternalOptionInfo {
  1:string value,
  2:string default_value,
  3:string type,
}
typedef map<string, InternalOptionInfo> InternalOptionList

struct InternalExtensionInfo {
  1:string name,
  2:string version,
  3:string sdk_version,
  4:string min_sdk_version,
}
typedef map<ExtensionRouteUUID, InternalExtensionInfo> InternalExtensionList

enum ExtensionCode {
  EXT_SUCCESS = 0,
  EXT_FAILED = 1,
  EXT_FATAL = 2,
}

struct ExtensionStatus {
  1:i32 code,
  2:string message,
  3:ExtensionRouteUUID uuid,
}

struct ExtensionResponse {
  1:ExtensionStatus status,
  2:ExtensionPluginResponse response,
}

exception ExtensionException {
  1:i32 code,
  2:string message,
  3:ExtensionRouteUUID uuid,
}

service Extension {
  ExtensionStatus ping(),
  ExtensionResponse call(1:string registry, 2:string item, 3:ExtensionPluginRequest request),
  void shutdown(),
}

service ExtensionManager extends Extension {
  InternalExtensionList extensions(),
  InternalOptionList options(),
  ExtensionStatus registerExtension(1:InternalExtensionInfo info, 2:ExtensionRegistry registry),
  ExtensionStatus deregisterExtension(1:ExtensionRouteUUID uuid),
  ExtensionResponse query(1:string sql),
  ExtensionResponse getQueryColumns(1:string sql),
}
