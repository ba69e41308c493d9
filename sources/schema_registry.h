// SchemaRegistry: a client of a Confluent-compatible schema registry
// (Confluent's REST API, also served by Apicurio under /apis/ccompat/v7),
// reduced to what a reader needs: a schema by its id, and a referenced
// schema by subject and version.
//
// Schemas never change once registered, so each one is fetched once and
// kept for the life of the process: one client per registry configuration
// (Shared) serves every view of the process. Thread-safe.
//
// Errors: kNotFound when the registry answers that the id (or subject
// version) does not exist: the record that named it is bad. kUnavailable
// when the registry cannot be asked (down, timing out, refusing our
// credentials, answering 5xx): the record is fine and must wait.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"

namespace freshet {

struct SchemaRegistryConfig {
  std::string url;                 // e.g. http://registry:8081 or http://apicurio:8080/apis/ccompat/v7
  std::string username, password;  // HTTP basic auth, when username is set
  std::string token;               // a bearer token, when set
  int connect_timeout_ms = 2000;
  int request_timeout_ms = 5000;
};

struct SchemaReference {
  std::string name;  // how the schema refers to it (Protobuf: the import path)
  std::string subject;
  int version = 0;
};

struct RegisteredSchema {
  int32_t id = 0;    // 0 for a schema fetched by subject and version
  std::string type;  // AVRO, PROTOBUF or JSON (the registry omits it for Avro)
  std::string text;  // the schema itself
  std::vector<SchemaReference> references;
};

class SchemaRegistry {
 public:
  explicit SchemaRegistry(SchemaRegistryConfig config);
  ~SchemaRegistry();
  SchemaRegistry(const SchemaRegistry&) = delete;
  SchemaRegistry& operator=(const SchemaRegistry&) = delete;

  // The process's client for `config` (same url and credentials: same
  // client, same cache).
  static std::shared_ptr<SchemaRegistry> Shared(const SchemaRegistryConfig& config);

  // GET /schemas/ids/{id}, once per id.
  Result<std::shared_ptr<const RegisteredSchema>> ById(int32_t id);
  // GET /subjects/{subject}/versions/{version}, once per pair.
  Result<std::shared_ptr<const RegisteredSchema>> BySubjectVersion(const std::string& subject, int version);

  // Puts a schema in the cache as if fetched (tests, tools).
  void Preload(RegisteredSchema schema);
  // HTTP requests made so far (successful or not).
  size_t requests() const;
  const SchemaRegistryConfig& config() const { return config_; }

 private:
  // The body of a 200 answer to GET url_ + path.
  Result<std::string> Get(const std::string& path);
  Result<std::shared_ptr<const RegisteredSchema>> Parse(const std::string& body, const std::string& what,
                                                        int32_t id);

  SchemaRegistryConfig config_;
  mutable std::mutex mu_;  // held through a fetch: one request per schema
  std::map<int32_t, std::shared_ptr<const RegisteredSchema>> by_id_;
  std::map<std::pair<std::string, int>, std::shared_ptr<const RegisteredSchema>> by_subject_;
  size_t requests_ = 0;
};

}  // namespace freshet
