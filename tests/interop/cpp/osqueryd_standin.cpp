// osqueryd_standin: plays osqueryd's side of an extension socket with Apache Thrift's C++
// runtime, the way osqueryd does it (docs/protocol.md §1.1): TSocket on the unix path, a
// TBufferedTransport, TBinaryProtocol, a new connection per call, and a liveness ping on a
// separate connection before each call.
//
//   osqueryd_standin ping SOCKET
//   osqueryd_standin call SOCKET REGISTRY ITEM [key=value ...]   prints the reply as JSON
//   osqueryd_standin shutdown SOCKET
//   osqueryd_standin check SOCKET        drives tests/interop/fixture_extension.py and checks values
//   osqueryd_standin check-plugins SOCKET  the same for its logger, config and distributed plugins
//   osqueryd_standin bench SOCKET TABLE CALLS [--no-probe]       prints rows/s and latencies
//   osqueryd_standin ping-during SOCKET TABLE [RELEASE PINGS]     worst ping while TABLE generates
//       with RELEASE: wait for RELEASE.started (the table's generate began), ping PINGS times,
//       then create RELEASE (the table's generate may end): every ping ran during the generate
//   osqueryd_standin bench-logger SOCKET ITEM FILE [THREADS [osqueryd|persistent]]
//                                                                 result lines of FILE as logger calls

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include "Extension.h"
#include "common.h"

using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::transport::TBufferedTransport;
using apache::thrift::transport::TSocket;
using namespace osquery::extensions;
using namespace osqsdk_interop;

namespace {

struct Conn {
  std::shared_ptr<TSocket> socket;
  std::shared_ptr<TBufferedTransport> transport;
  std::unique_ptr<ExtensionClient> client;

  explicit Conn(const std::string& path, int timeout_ms = 300000) {
    socket = std::make_shared<TSocket>(path);
    socket->setRecvTimeout(timeout_ms);
    socket->setSendTimeout(timeout_ms);
    transport = std::make_shared<TBufferedTransport>(socket);
    auto protocol = std::make_shared<TBinaryProtocol>(transport);
    client = std::make_unique<ExtensionClient>(protocol);
    transport->open();
  }
  ~Conn() {
    try {
      transport->close();
    } catch (...) {
    }
  }
};

// osqueryd's extensionPathActive(): connect and ping with a 10 s timeout.
bool probe(const std::string& path) {
  if (access(path.c_str(), W_OK) != 0) return false;
  try {
    Conn conn(path, 10000);
    ExtensionStatus status;
    conn.client->ping(status);
    return status.code != 1;
  } catch (const std::exception&) {
    return false;
  }
}

ExtensionResponse call(const std::string& path, const std::string& registry,
                       const std::string& item, const ExtensionPluginRequest& request,
                       bool with_probe = true) {
  if (with_probe && !probe(path)) {
    throw std::runtime_error("Extension socket not available: " + path);
  }
  Conn conn(path);
  ExtensionResponse response;
  conn.client->call(response, registry, item, request);
  return response;
}

std::string reply_json(const ExtensionResponse& r) {
  return "{\"code\":" + std::to_string(r.status.code) + ",\"message\":" +
         json_escape(r.status.message) + ",\"uuid\":" + std::to_string(r.status.uuid) +
         ",\"rows\":" + json_rows(r.response) + "}";
}

// -- check: the values a real osqueryd would read back ---------------------------------
int failures = 0;
int checks = 0;

void expect(bool ok, const std::string& what) {
  ++checks;
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  }
}

void expect_eq(const std::string& got, const std::string& want, const std::string& what) {
  expect(got == want, what + ": got " + json_escape(got) + ", want " + json_escape(want));
}

const std::map<std::string, std::string>* find_route(const ExtensionResponse& r,
                                                     const std::string& id,
                                                     const std::string& name) {
  for (const auto& route : r.response) {
    auto i = route.find("id");
    auto n = route.find(id == "alias" ? "alias" : "name");
    if (i != route.end() && i->second == id && n != route.end() && n->second == name) {
      return &route;
    }
  }
  return nullptr;
}

std::string get(const std::map<std::string, std::string>& row, const std::string& key) {
  auto it = row.find(key);
  return it == row.end() ? std::string("<absent>") : it->second;
}

int run_check(const std::string& path) {
  // ping: C++ extensions and osqsdk answer {0, "pong", <uuid>}.
  {
    Conn conn(path, 10000);
    ExtensionStatus status;
    conn.client->ping(status);
    expect(status.code == 0, "ping code 0");
    expect(status.uuid > 0 && status.uuid <= 65535, "ping carries the extension uuid");
  }

  // columns: routes with osquery's type spellings and option bitmasks.
  auto cols = call(path, "table", "interop_types", {{"action", "columns"}});
  expect(cols.status.code == 0, "columns status 0");
  struct Want { const char* name; const char* type; const char* op; };
  const Want wants[] = {{"t", "TEXT", "0"}, {"i", "INTEGER", "1"}, {"b", "BIGINT", "2"},
                        {"u", "UNSIGNED BIGINT", "4"}, {"d", "DOUBLE", "8"},
                        {"blob", "BLOB", "16"}, {"flag", "INTEGER", "0"}, {"n", "TEXT", "0"}};
  for (const auto& w : wants) {
    auto route = find_route(cols, "column", w.name);
    expect(route != nullptr, std::string("column route for ") + w.name);
    if (route) {
      expect_eq(get(*route, "type"), w.type, std::string("type of ") + w.name);
      expect_eq(get(*route, "op"), w.op, std::string("op of ") + w.name);
    }
  }
  auto alias = find_route(cols, "alias", "interop_types_alias");
  expect(alias != nullptr, "table alias route");
  auto col_alias = find_route(cols, "columnAlias", "text_alias");
  expect(col_alias != nullptr && get(*col_alias, "target") == "t", "column alias route -> t");
  bool has_attributes = false;
  for (const auto& route : cols.response) {
    for (const auto& kv : route) (void)kv;
    expect(route.count("id") == 1, "every route carries id");
    if (get(route, "id") == "attributes") {
      has_attributes = true;
      expect_eq(get(route, "attributes"), "2", "attributes: cacheable");
    }
  }
  expect(has_attributes, "attributes route present");

  // generate with a real context: every value as osqueryd's parsers need it.
  const std::string context =
      "{\"constraints\":[{\"name\":\"b\",\"list\":[],\"affinity\":\"BIGINT\"},"
      "{\"name\":\"i\",\"list\":[{\"op\":2,\"expr\":\"-42\"}],\"affinity\":\"INTEGER\"},"
      "{\"name\":\"t\",\"list\":[{\"op\":65,\"expr\":\"h%\"}],\"affinity\":\"TEXT\"}],"
      "\"colsUsed\":[\"t\",\"i\",\"b\",\"u\",\"d\",\"blob\",\"flag\",\"n\"],\"colsUsedBitset\":255}";
  auto gen = call(path, "table", "interop_types", {{"action", "generate"}, {"context", context}});
  expect(gen.status.code == 0, "generate status 0: " + gen.status.message);
  expect(gen.response.size() == 2, "generate returned 2 rows");
  if (gen.response.size() == 2) {
    const auto& row = gen.response[0];
    expect_eq(get(row, "t"), "h\xc3\xa9llo", "TEXT as UTF-8");
    expect_eq(get(row, "i"), "-42", "INTEGER decimal");
    expect_eq(get(row, "b"), "1099511627776", "BIGINT decimal (2^40)");
    expect_eq(get(row, "u"), "9223372036854775807", "UNSIGNED BIGINT at 2^63-1");
    expect_eq(get(row, "d"), "0.1", "DOUBLE shortest round-trip text");
    expect(std::strtod(get(row, "d").c_str(), nullptr) == 0.1, "DOUBLE parses back with strtod");
    expect_eq(get(row, "blob"), std::string("\x00\x01\xff", 3), "BLOB raw bytes");
    expect_eq(get(row, "flag"), "1", "bool True as 1");
    expect_eq(get(row, "n"), "<absent>", "None as an absent key (NULL)");
    const auto& row2 = gen.response[1];
    expect_eq(get(row2, "flag"), "0", "bool False as 0");
    expect_eq(get(row2, "d"), "1e+100", "large DOUBLE");
    expect_eq(get(row2, "t"), std::string("caf\xe9", 4), "non-UTF-8 filename bytes round-trip");
  }

  // The table echoes what it understood of the context (constraints typed by affinity).
  const std::string echo_context =
      "{\"constraints\":[{\"name\":\"i\",\"list\":[{\"op\":2,\"expr\":\"-42\"}],"
      "\"affinity\":\"INTEGER\"},{\"name\":\"t\",\"list\":[{\"op\":65,\"expr\":\"h%\"}],"
      "\"affinity\":\"TEXT\"}],\"colsUsed\":[\"value_type\",\"column\",\"operator\","
      "\"value\"],\"colsUsedBitset\":15}";
  auto echo = call(path, "table", "interop_echo",
                   {{"action", "generate"}, {"context", echo_context}});
  expect(echo.status.code == 0, "echo status 0: " + echo.status.message);
  bool saw_i = false, saw_t = false;
  for (const auto& row : echo.response) {
    if (get(row, "column") == "i") {
      saw_i = true;
      expect_eq(get(row, "operator"), "EQUALS", "op 2 is EQUALS");
      expect_eq(get(row, "value"), "-42", "INTEGER constraint typed");
      expect_eq(get(row, "value_type"), "int", "INTEGER constraint is an int");
    }
    if (get(row, "column") == "t") {
      saw_t = true;
      expect_eq(get(row, "operator"), "LIKE", "op 65 is LIKE");
      expect_eq(get(row, "value"), "h%", "LIKE expression");
    }
    if (get(row, "column") == "*used*") {
      expect_eq(get(row, "value"), "column,operator,value,value_type", "colsUsed");
    }
  }
  expect(saw_i && saw_t, "echo saw the constraints on i and t");

  // Writable table: insert (extension assigns the rowid), update, delete (docs/protocol.md §3.6).
  auto ins = call(path, "table", "interop_kv",
                  {{"action", "insert"}, {"auto_rowid", "false"},
                   {"json_value_array", "[\"alpha\",7]"}, {"context", "{\"constraints\":[]}"}});
  expect(ins.status.code == 0 && ins.response.size() == 1, "insert: one row");
  std::string rowid;
  if (ins.response.size() == 1) {
    expect_eq(get(ins.response[0], "status"), "success", "insert status");
    rowid = get(ins.response[0], "id");
    char* end = nullptr;
    std::strtoll(rowid.c_str(), &end, 10);
    expect(!rowid.empty() && end && *end == '\0', "insert returned a base-10 id: " + rowid);
  }
  auto ins_auto = call(path, "table", "interop_kv",
                       {{"action", "insert"}, {"auto_rowid", "true"}, {"id", "100"},
                        {"json_value_array", "[\"beta\",8]"}});
  expect(ins_auto.response.size() == 1 && get(ins_auto.response[0], "status") == "success" &&
             get(ins_auto.response[0], "id") == "<absent>",
         "insert with auto_rowid: success without id");
  auto dup = call(path, "table", "interop_kv",
                  {{"action", "insert"}, {"auto_rowid", "false"},
                   {"json_value_array", "[\"alpha\",9]"}});
  expect(dup.response.size() == 1 && get(dup.response[0], "status") == "constraint",
         "duplicate key answers constraint");
  auto upd = call(path, "table", "interop_kv",
                  {{"action", "update"}, {"id", rowid}, {"json_value_array", "[\"alpha\",70]"}});
  expect(upd.response.size() == 1 && get(upd.response[0], "status") == "success", "update success");
  auto rows = call(path, "table", "interop_kv", {{"action", "generate"}});
  bool updated = false;
  for (const auto& row : rows.response) {
    if (get(row, "key") == "alpha") updated = get(row, "value") == "70" && get(row, "rowid") == rowid;
  }
  expect(updated, "generate shows the updated row with its rowid");
  auto del = call(path, "table", "interop_kv", {{"action", "delete"}, {"id", rowid}});
  expect(del.response.size() == 1 && get(del.response[0], "status") == "success", "delete success");
  auto bad = call(path, "table", "interop_kv",
                  {{"action", "insert"}, {"auto_rowid", "false"}, {"json_value_array", "[1]"}});
  expect(bad.response.size() == 1 && get(bad.response[0], "status") == "failure" &&
             !get(bad.response[0], "message").empty(),
         "wrong value count answers failure with a message");
  auto ro = call(path, "table", "interop_types",
                 {{"action", "delete"}, {"id", "1"}});
  expect(ro.response.size() == 1 && get(ro.response[0], "status") == "readonly",
         "a table without write handlers answers readonly");

  // Failures come back as status 1 with a message; the server stays up.
  auto boom = call(path, "table", "interop_fail", {{"action", "generate"}});
  expect(boom.status.code == 1 && boom.status.message.find("kaboom") != std::string::npos,
         "generate that raises: code 1 with its message: " + boom.status.message);
  auto unknown = call(path, "table", "no_such_table", {{"action", "generate"}});
  expect(unknown.status.code == 1, "unknown item: code 1");
  auto badctx = call(path, "table", "interop_types",
                     {{"action", "generate"}, {"context", "{not json"}});
  expect(badctx.status.code == 1 && badctx.status.message.find("context") != std::string::npos,
         "bad context JSON: code 1 naming the context");
  auto again = call(path, "table", "interop_types", {{"action", "generate"}});
  expect(again.status.code == 0 && again.response.size() == 2, "server still answers");

  std::printf("{\"checks\":%d,\"failures\":%d}\n", checks, failures);
  return failures == 0 ? 0 : 1;
}

// -- check-plugins: logger, config and distributed requests as osqueryd sends them -------
std::vector<std::map<std::string, std::string>> log_rows(const std::string& path,
                                                         const std::string& kind) {
  auto r = call(path, "table", "interop_log", {{"action", "generate"}});
  std::vector<std::map<std::string, std::string>> out;
  for (const auto& row : r.response) {
    if (get(row, "kind") == kind) out.push_back(row);
  }
  return out;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

int run_check_plugins(const std::string& path) {
  const std::string common =
      "\"name\":\"pack_ir_ssh\",\"hostIdentifier\":\"web-1\","
      "\"calendarTime\":\"Tue Nov 24 07:30:19 2026 UTC\",\"unixTime\":1795505419,"
      "\"epoch\":0,\"counter\":3,\"numerics\":false";
  const std::string event_line = "{" + common +
      ",\"decorations\":{\"host_uuid\":\"abc\"},"
      "\"columns\":{\"host\":\"10.0.0.9\",\"username\":\"alice\"},\"action\":\"added\"}";
  const std::string batch_line = "{\"diffResults\":{\"removed\":[{\"pid\":\"1\"}],"
      "\"added\":[{\"pid\":\"2\"}]}," + common + "}";
  const std::string snapshot_line = "{\"snapshot\":[{\"a\":\"1\"},{\"a\":\"2\"}],"
      "\"action\":\"snapshot\"," + common + "}";
  const std::string status_log =
      "[{\"s\":2,\"f\":\"config.cpp\",\"i\":12,\"m\":\"bad pack\",\"h\":\"web-1\","
      "\"c\":\"Tue Nov 24 07:30:19 2026 UTC\",\"u\":1795505420}]";

  // Logger: init, then features (answered in the status code), then logs (docs/protocol.md §4).
  auto init = call(path, "logger", "interop_logger", {{"init", "osqueryd"}});
  expect(init.status.code == 0, "logger init answers 0");
  auto features = call(path, "logger", "interop_logger", {{"action", "features"}});
  expect(features.status.code == 3, "features bitmask 3 (status logs + events), got " +
                                        std::to_string(features.status.code));
  auto r1 = call(path, "logger", "interop_logger", {{"string", event_line}, {"category", "event"}});
  expect(r1.status.code == 0, "event-format result line accepted");
  auto r2 = call(path, "logger", "interop_logger", {{"string", batch_line}, {"category", "event"}});
  expect(r2.status.code == 0, "batch-format result line accepted");
  auto r3 = call(path, "logger", "interop_logger", {{"snapshot", snapshot_line}});
  expect(r3.status.code == 0, "snapshot line accepted");
  auto r4 = call(path, "logger", "interop_logger", {{"status", "true"}, {"log", status_log}});
  expect(r4.status.code == 0, "status batch accepted");
  auto r5 = call(path, "logger", "interop_logger",
                 {{"event", "{\"pid\":\"7\",\"time\":\"1795505419\",\"eid\":\"000001\"}"}});
  expect(r5.status.code == 0, "event row accepted");
  // A failed result line makes osqueryd exit (docs/protocol.md §4.6): success, logged.
  auto bad = call(path, "logger", "interop_logger", {{"string", "{not json"}});
  expect(bad.status.code == 0, "malformed result line: success, never a failure");
  auto bad_status = call(path, "logger", "interop_logger", {{"status", "true"}, {"log", "{"}});
  expect(bad_status.status.code == 1 && contains(bad_status.status.message, "not JSON"),
         "malformed status batch: code 1 with the reason");

  auto inits = log_rows(path, "init");
  expect(inits.size() == 1 && get(inits[0], "name") == "osqueryd", "init name reached the plugin");
  auto events = log_rows(path, "event");
  expect(events.size() == 1, "one event-format row");
  if (!events.empty()) {
    expect_eq(get(events[0], "name"), "pack_ir_ssh", "result name");
    expect_eq(get(events[0], "host"), "web-1", "hostIdentifier");
    expect_eq(get(events[0], "counter"), "3", "counter typed");
    expect_eq(get(events[0], "unix_time"), "1795505419", "unixTime typed");
    expect_eq(get(events[0], "action"), "added", "action");
    expect_eq(get(events[0], "detail"), "{\"host\": \"10.0.0.9\", \"username\": \"alice\"}",
              "columns");
    expect_eq(get(events[0], "decorations"), "{\"host_uuid\": \"abc\"}", "decorations");
  }
  auto batch = log_rows(path, "batch");
  expect(batch.size() == 2 && get(batch[0], "action") == "removed" &&
             get(batch[1], "action") == "added",
         "batch rows: removed then added");
  expect(log_rows(path, "snapshot").size() == 2, "snapshot rows");
  auto subscriber = log_rows(path, "subscriber");
  expect(subscriber.size() == 1 &&
             get(subscriber[0], "detail") ==
                 "{\"eid\": \"000001\", \"pid\": \"7\", \"time\": \"1795505419\"}",
         "event-subscriber row reached the plugin");
  auto status = log_rows(path, "status");
  expect(status.size() == 1, "one status record");
  if (!status.empty()) {
    expect_eq(get(status[0], "name"), "ERROR", "severity 2 is ERROR");
    expect_eq(get(status[0], "detail"), "bad pack", "status message");
    expect_eq(get(status[0], "counter"), "12", "status line number");
    expect_eq(get(status[0], "action"), "config.cpp", "status file");
    expect_eq(get(status[0], "unix_time"), "1795505420", "status unix time");
  }

  // Config: genConfig and genPack (docs/protocol.md §5).
  auto conf = call(path, "config", "interop_config", {{"action", "genConfig"}});
  expect(conf.status.code == 0 && conf.response.size() == 1, "genConfig: one row");
  if (conf.response.size() == 1) {
    const std::string text = get(conf.response[0], "osquery.conf");
    expect(contains(text, "\"host_identifier\":\"uuid\""), "config options served: " + text);
    expect(contains(text, "\"query\":\"SELECT * FROM uptime;\""), "schedule served");
    expect(!contains(text, "comment"), "comments stripped");
  }
  auto pack = call(path, "config", "interop_config",
                   {{"action", "genPack"}, {"name", "ir"}, {"value", "packs/ir.conf"}});
  expect(pack.status.code == 0 && pack.response.size() == 1 &&
             contains(get(pack.response[0], "ir"), "\"query\":\"SELECT * FROM last;\""),
         "genPack serves the pack under its name");
  auto escape = call(path, "config", "interop_config",
                     {{"action", "genPack"}, {"name", "x"}, {"value", "../../etc/passwd"}});
  expect(escape.status.code == 1 && contains(escape.status.message, "outside"),
         "genPack refuses a path outside the root");

  // Distributed: getQueries and writeResults (docs/protocol.md §6).
  auto work = call(path, "distributed", "interop_distributed", {{"action", "getQueries"}});
  expect(work.status.code == 0 && work.response.size() == 1, "getQueries: one row");
  if (work.response.size() == 1) {
    expect_eq(get(work.response[0], "results"),
              "{\"queries\":{\"q1\":\"SELECT 1\"},\"discovery\":{\"q1\":\"SELECT 1\"},"
              "\"accelerate\":30}",
              "getQueries results JSON");
  }
  const std::string results =
      "{\"queries\":{\"q1\":[{\"1\":\"1\"}],\"q2\":\"\"},\"statuses\":{\"q1\":0,\"q2\":\"1\"},"
      "\"messages\":{\"q1\":\"\",\"q2\":\"no such table: nope\"},"
      "\"stats\":{\"q1\":{\"wall_time_ms\":1,\"user_time\":0,\"system_time\":0,\"memory\":9}}}";
  auto written = call(path, "distributed", "interop_distributed",
                      {{"action", "writeResults"}, {"results", results}});
  expect(written.status.code == 0, "writeResults accepted");
  auto dist = log_rows(path, "distributed");
  expect(dist.size() == 2, "two distributed results");
  if (dist.size() == 2) {
    expect_eq(get(dist[0], "name"), "q1", "first result id");
    expect_eq(get(dist[0], "detail"), "[{\"1\": \"1\"}]", "rows of q1");
    expect_eq(get(dist[1], "counter"), "1", "status given as a string, typed");
    expect_eq(get(dist[1], "action"), "no such table: nope", "error message");
    expect_eq(get(dist[1], "detail"), "[]", "\"\" rows read as none");
  }
  std::printf("{\"checks\":%d,\"failures\":%d}\n", checks, failures);
  return failures == 0 ? 0 : 1;
}

// -- bench ------------------------------------------------------------------------------
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int run_bench(const std::string& path, const std::string& table, int calls, bool with_probe) {
  std::vector<double> latencies;
  latencies.reserve(calls);
  size_t rows = 0;
  // The context osqueryd sends for SELECT * (docs/protocol.md §3.4): one entry per column,
  // sorted by name, with no constraints; every column used.
  auto cols = call(path, "table", table, {{"action", "columns"}}, with_probe);
  std::vector<std::pair<std::string, std::string>> columns;
  for (const auto& route : cols.response) {
    if (get(route, "id") == "column") columns.emplace_back(get(route, "name"), get(route, "type"));
  }
  auto declared = columns;
  std::sort(columns.begin(), columns.end());
  std::string context = "{\"constraints\":[";
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i) context += ",";
    context += "{\"name\":" + json_escape(columns[i].first) + ",\"list\":[],\"affinity\":" +
               json_escape(columns[i].second) + "}";
  }
  context += "],\"colsUsed\":[";
  for (size_t i = 0; i < declared.size(); ++i) {
    if (i) context += ",";
    context += json_escape(declared[i].first);
  }
  unsigned long long bitset = declared.size() >= 64 ? ~0ULL : ((1ULL << declared.size()) - 1);
  context += "],\"colsUsedBitset\":" + std::to_string(bitset) + "}";
  const ExtensionPluginRequest request = {{"action", "generate"}, {"context", context}};
  double start = now_s();
  for (int i = 0; i < calls; ++i) {
    double t0 = now_s();
    auto r = call(path, "table", table, request, with_probe);
    latencies.push_back(now_s() - t0);
    if (r.status.code != 0) {
      std::fprintf(stderr, "generate failed: %s\n", r.status.message.c_str());
      return 1;
    }
    rows += r.response.size();
  }
  double elapsed = now_s() - start;
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) { return latencies[std::min(latencies.size() - 1, size_t(p * latencies.size()))] * 1e6; };
  std::printf("{\"calls\":%d,\"rows\":%zu,\"seconds\":%.6f,\"rows_per_s\":%.1f,"
              "\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}\n",
              calls, rows, elapsed, rows / elapsed, pct(0.5), pct(0.99),
              latencies.back() * 1e6);
  return 0;
}

static bool exists(const std::string& file) { return access(file.c_str(), F_OK) == 0; }

int run_ping_during(const std::string& path, const std::string& table,
                    const std::string& release, int want) {
  std::atomic<bool> done{false};
  double gen_seconds = 0;
  int gen_code = -1;
  std::thread slow([&] {
    double t0 = now_s();
    auto r = call(path, "table", table, {{"action", "generate"}});
    gen_seconds = now_s() - t0;
    gen_code = r.status.code;
    done = true;
  });
  if (release.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } else {
    for (int i = 0; i < 3000 && !exists(release + ".started"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  double worst = 0;
  int pings = 0, failed = 0;
  while (!done && (release.empty() || pings < want)) {
    double t0 = now_s();
    if (!probe(path)) ++failed;
    worst = std::max(worst, now_s() - t0);
    ++pings;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  bool during = !done;  // every ping so far ran while the generate was still unanswered
  if (!release.empty()) {
    FILE* f = std::fopen(release.c_str(), "w");
    if (f) std::fclose(f);
  }
  slow.join();
  std::printf("{\"pings\":%d,\"failed\":%d,\"max_ping_ms\":%.3f,\"generate_s\":%.3f,"
              "\"generate_code\":%d,\"during\":%s}\n",
              pings, failed, worst * 1e3, gen_seconds, gen_code, during ? "true" : "false");
  return failed == 0 && gen_code == 0 ? 0 : 1;
}

// bench-logger: send every line of FILE to logger ITEM as osqueryd sends result lines
// ({"string": line, "category": "event"}), from THREADS threads at once (osqueryd's
// scheduler is one; 1 by default). MODE "osqueryd" opens a connection per call with a ping
// probe first, as osqueryd does; "persistent" keeps one connection per thread. Prints
// lines/s and per-call latency percentiles.
int run_bench_logger(const std::string& path, const std::string& item, const std::string& file,
                     int threads, bool persistent) {
  std::vector<std::string> lines;
  {
    FILE* f = std::fopen(file.c_str(), "rb");
    if (!f) {
      std::fprintf(stderr, "cannot open %s\n", file.c_str());
      return 2;
    }
    std::string current;
    int c;
    while ((c = std::fgetc(f)) != EOF) {
      if (c == '\n') {
        if (!current.empty()) lines.push_back(current);
        current.clear();
      } else {
        current.push_back(static_cast<char>(c));
      }
    }
    if (!current.empty()) lines.push_back(current);
    std::fclose(f);
  }
  threads = std::max(1, threads);
  std::vector<std::vector<double>> latencies(threads);
  std::atomic<int> failed{0};
  std::atomic<size_t> next{0};
  double start = now_s();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::unique_ptr<Conn> conn;
      if (persistent) conn = std::make_unique<Conn>(path);
      for (size_t i = next++; i < lines.size(); i = next++) {
        double t0 = now_s();
        try {
          ExtensionPluginRequest request = {{"string", lines[i]}, {"category", "event"}};
          ExtensionResponse r;
          if (persistent) {
            conn->client->call(r, "logger", item, request);
          } else {
            r = call(path, "logger", item, request);
          }
          if (r.status.code != 0) ++failed;
        } catch (const std::exception&) {
          ++failed;
        }
        latencies[t].push_back(now_s() - t0);
      }
    });
  }
  for (auto& w : workers) w.join();
  double elapsed = now_s() - start;
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0.0 : all[std::min(all.size() - 1, size_t(p * all.size()))] * 1e6; };
  std::printf("{\"calls\":%zu,\"threads\":%d,\"mode\":\"%s\",\"failed\":%d,"
              "\"seconds\":%.6f,\"lines_per_s\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
              "\"max_us\":%.1f}\n",
              all.size(), threads, persistent ? "persistent" : "osqueryd", failed.load(),
              elapsed, all.size() / elapsed, pct(0.5),
              pct(0.99), all.empty() ? 0.0 : all.back() * 1e6);
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s ping|call|shutdown|check|bench|ping-during SOCKET ...\n", argv[0]);
    return 2;
  }
  const std::string cmd = argv[1], path = argv[2];
  try {
    if (cmd == "ping") {
      Conn conn(path, 10000);
      ExtensionStatus status;
      conn.client->ping(status);
      std::printf("{\"code\":%d,\"message\":%s,\"uuid\":%lld}\n", status.code,
                  json_escape(status.message).c_str(), static_cast<long long>(status.uuid));
      return 0;
    }
    if (cmd == "call" && argc >= 5) {
      ExtensionPluginRequest request;
      for (int i = 5; i < argc; ++i) {
        std::string kv = argv[i];
        auto eq = kv.find('=');
        if (eq == std::string::npos) {
          std::fprintf(stderr, "bad key=value: %s\n", argv[i]);
          return 2;
        }
        request[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      std::printf("%s\n", reply_json(call(path, argv[3], argv[4], request)).c_str());
      return 0;
    }
    if (cmd == "shutdown") {
      Conn conn(path, 10000);
      conn.client->shutdown();
      std::printf("{\"shutdown\":\"replied\"}\n");
      return 0;
    }
    if (cmd == "check") return run_check(path);
    if (cmd == "check-plugins") return run_check_plugins(path);
    if (cmd == "bench" && argc >= 5) {
      bool with_probe = !(argc >= 6 && std::string(argv[5]) == "--no-probe");
      return run_bench(path, argv[3], std::atoi(argv[4]), with_probe);
    }
    if (cmd == "ping-during" && argc >= 4) {
      return run_ping_during(path, argv[3], argc >= 6 ? argv[4] : "",
                             argc >= 6 ? std::atoi(argv[5]) : 0);
    }
    if (cmd == "bench-logger" && argc >= 5) {
      return run_bench_logger(path, argv[3], argv[4], argc >= 6 ? std::atoi(argv[5]) : 1,
                              argc >= 7 && std::string(argv[6]) == "persistent");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 3;
  }
  std::fprintf(stderr, "unknown command or missing arguments: %s\n", cmd.c_str());
  return 2;
}
