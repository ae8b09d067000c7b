// manager_standin: plays osqueryd's extension manager with Apache Thrift's C++ runtime
// (TThreadedServer + buffered transport + binary protocol, as osqueryd serves it).
//
//   manager_standin SOCKET [--uuid N] [--refuse NAME] [--drop-after SECONDS]
//                          [--exit-after SECONDS]
//
// It prints one JSON event per line on stdout: "listening", "register" (with the registry
// the extension broadcast), "checked" (after pinging the new extension and calling
// `columns` and `generate` on each of its tables the way osqueryd does), "deregister",
// "dropped" and "exit". --drop-after removes the extension from extensions() (an
// extension must then exit 1); --exit-after stops the manager and removes its socket (an
// extension must then exit 0).

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TServerSocket.h>
#include <thrift/transport/TSocket.h>

#include "Extension.h"
#include "ExtensionManager.h"
#include "common.h"

using namespace apache::thrift;
using namespace apache::thrift::protocol;
using namespace apache::thrift::server;
using namespace apache::thrift::transport;
using namespace osquery::extensions;
using namespace osqsdk_interop;

namespace {

std::mutex out_mutex;
void emit(const std::string& line) {
  std::lock_guard<std::mutex> lock(out_mutex);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

std::string registry_json(const ExtensionRegistry& registry) {
  std::string out = "{";
  bool first_reg = true;
  for (const auto& reg : registry) {
    if (!first_reg) out += ",";
    first_reg = false;
    out += json_escape(reg.first) + ":{";
    bool first_item = true;
    for (const auto& item : reg.second) {
      if (!first_item) out += ",";
      first_item = false;
      out += json_escape(item.first) + ":" + json_rows(item.second);
    }
    out += "}";
  }
  return out + "}";
}

struct ExtClient {
  std::shared_ptr<TTransport> transport;
  std::unique_ptr<ExtensionClient> client;
  explicit ExtClient(const std::string& path) {
    auto socket = std::make_shared<TSocket>(path);
    socket->setRecvTimeout(10000);
    socket->setSendTimeout(10000);
    transport = std::make_shared<TBufferedTransport>(socket);
    client = std::make_unique<ExtensionClient>(std::make_shared<TBinaryProtocol>(transport));
    transport->open();
  }
  ~ExtClient() {
    try {
      transport->close();
    } catch (...) {
    }
  }
};

class Manager : public ExtensionManagerIf {
 public:
  Manager(std::string path, int64_t first_uuid, std::set<std::string> refuse)
      : path_(std::move(path)), next_uuid_(first_uuid), refuse_(std::move(refuse)) {}

  void ping(ExtensionStatus& r) override {
    r.code = 0;
    r.message = "pong";
    r.uuid = 0;
  }
  void call(ExtensionResponse& r, const std::string&, const std::string& item,
            const ExtensionPluginRequest&) override {
    r.status.code = 1;
    r.status.message = "Cannot call registry item: " + item;
  }
  void shutdown() override {}
  void extensions(InternalExtensionList& r) override {
    std::lock_guard<std::mutex> lock(mutex_);
    r = extensions_;
  }
  void options(InternalOptionList& r) override {
    InternalOptionInfo logger;
    logger.value = "filesystem";
    logger.default_value = "filesystem";
    logger.type = "string";
    r["logger_plugin"] = logger;
  }
  void registerExtension(ExtensionStatus& r, const InternalExtensionInfo& info,
                         const ExtensionRegistry& registry) override {
    std::lock_guard<std::mutex> lock(mutex_);
    r.uuid = 0;
    for (const auto& e : extensions_) {
      if (e.second.name == info.name) {
        r.code = 1;
        r.message = "Duplicate extension registered";
        emit("{\"event\":\"refused\",\"message\":" + json_escape(r.message) + "}");
        return;
      }
    }
    if (refuse_.count(info.name)) {
      r.code = 1;
      r.message = "Duplicate extension registered";
      emit("{\"event\":\"refused\",\"message\":" + json_escape(r.message) + "}");
      return;
    }
    for (const auto& reg : registry) {
      for (const auto& item : reg.second) {
        if (reg.first == "table" && item.second.empty()) {
          r.code = 1;
          r.message = "Failed adding registry: Invalid route info";
          emit("{\"event\":\"refused\",\"message\":" + json_escape(r.message) + "}");
          return;
        }
      }
    }
    int64_t uuid = next_uuid_++;
    extensions_[uuid] = info;
    r.code = 0;
    r.message = "OK";
    r.uuid = uuid;
    emit("{\"event\":\"register\",\"name\":" + json_escape(info.name) +
         ",\"version\":" + json_escape(info.version) +
         ",\"sdk_version\":" + json_escape(info.sdk_version) +
         ",\"min_sdk_version\":" + json_escape(info.min_sdk_version) +
         ",\"uuid\":" + std::to_string(uuid) + ",\"registry\":" + registry_json(registry) + "}");
    std::thread(&Manager::check, this, uuid, registry).detach();
  }
  void deregisterExtension(ExtensionStatus& r, const ExtensionRouteUUID uuid) override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (extensions_.erase(uuid) == 0) {
      r.code = 1;
      r.message = "No extension UUID found";
    } else {
      r.code = 0;
      r.message = "OK";
      emit("{\"event\":\"deregister\",\"uuid\":" + std::to_string(uuid) + "}");
    }
    r.uuid = 0;
  }
  void query(ExtensionResponse& r, const std::string& sql) override {
    if (sql == "select 1 as one") {
      r.status.code = 0;
      r.status.message = "OK";
      r.response = {{{"one", "1"}}};
    } else {
      r.status.code = 1;
      r.status.message = "no such table: " + sql;
    }
  }
  void getQueryColumns(ExtensionResponse& r, const std::string& sql) override {
    query(r, sql);
  }

  void drop_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& e : extensions_) {
      emit("{\"event\":\"dropped\",\"uuid\":" + std::to_string(e.first) + "}");
    }
    extensions_.clear();
  }

  bool registered() {
    std::lock_guard<std::mutex> lock(mutex_);
    return !extensions_.empty();
  }

 private:
  // What osqueryd does with a new extension: wait for its socket, ping it, and (on a new
  // SQLite connection) ask each table for its columns; a query then calls generate.
  void check(int64_t uuid, ExtensionRegistry registry) {
    const std::string ext_path = path_ + "." + std::to_string(uuid);
    for (int i = 0; i < 250 && access(ext_path.c_str(), W_OK) != 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::string tables = "{";
    int ping_code = -1;
    long long ping_uuid = -1;
    std::string error;
    try {
      {
        ExtClient c(ext_path);
        ExtensionStatus status;
        c.client->ping(status);
        ping_code = status.code;
        ping_uuid = status.uuid;
      }
      bool first = true;
      for (const auto& item : registry["table"]) {
        ExtensionResponse cols, gen;
        {
          ExtClient c(ext_path);
          c.client->call(cols, "table", item.first, {{"action", "columns"}});
        }
        {
          ExtClient c(ext_path);
          c.client->call(gen, "table", item.first,
                         {{"action", "generate"}, {"context", "{\"constraints\":[]}"}});
        }
        if (!first) tables += ",";
        first = false;
        tables += json_escape(item.first) + ":{\"columns_code\":" +
                  std::to_string(cols.status.code) + ",\"routes_match\":" +
                  (cols.response == item.second ? "true" : "false") +
                  ",\"generate_code\":" + std::to_string(gen.status.code) +
                  ",\"generate_message\":" + json_escape(gen.status.message) +
                  ",\"rows\":" + json_rows(gen.response) + "}";
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
    tables += "}";
    emit("{\"event\":\"checked\",\"uuid\":" + std::to_string(uuid) +
         ",\"ping_code\":" + std::to_string(ping_code) + ",\"ping_uuid\":" +
         std::to_string(ping_uuid) + ",\"tables\":" + tables + ",\"error\":" +
         json_escape(error) + "}");
  }

  std::mutex mutex_;
  std::string path_;
  int64_t next_uuid_;
  std::set<std::string> refuse_;
  InternalExtensionList extensions_;
};

std::atomic<bool> stop_requested{false};
void on_signal(int) { stop_requested = true; }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SOCKET [--uuid N] [--refuse NAME] [--drop-after S] "
                         "[--exit-after S]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  int64_t uuid = 4242;
  std::set<std::string> refuse;
  double drop_after = -1, exit_after = -1;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--uuid") uuid = std::atoll(argv[i + 1]);
    else if (flag == "--refuse") refuse.insert(argv[i + 1]);
    else if (flag == "--drop-after") drop_after = std::atof(argv[i + 1]);
    else if (flag == "--exit-after") exit_after = std::atof(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  unlink(path.c_str());

  auto handler = std::make_shared<Manager>(path, uuid, refuse);
  auto processor = std::make_shared<ExtensionManagerProcessor>(handler);
  auto server_socket = std::make_shared<TServerSocket>(path);
  TThreadedServer server(processor, server_socket, std::make_shared<TBufferedTransportFactory>(),
                         std::make_shared<TBinaryProtocolFactory>());
  std::thread serving([&] { server.serve(); });
  for (int i = 0; i < 250 && access(path.c_str(), F_OK) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  emit("{\"event\":\"listening\",\"socket\":" + json_escape(path) + "}");

  auto started = std::chrono::steady_clock::now();
  auto registered_at = started;
  bool was_registered = false, dropped = false;
  while (!stop_requested) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto now = std::chrono::steady_clock::now();
    if (!was_registered && handler->registered()) {
      was_registered = true;
      registered_at = now;
    }
    double since_reg = std::chrono::duration<double>(now - registered_at).count();
    if (was_registered && drop_after >= 0 && !dropped && since_reg >= drop_after) {
      handler->drop_all();
      dropped = true;
    }
    if (was_registered && exit_after >= 0 && since_reg >= exit_after) break;
  }
  server.stop();
  serving.join();
  unlink(path.c_str());
  emit("{\"event\":\"exit\"}");
  return 0;
}
