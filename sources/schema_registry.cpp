#include "sources/schema_registry.h"

#include <curl/curl.h>

#include <nlohmann/json.hpp>

namespace freshet {
namespace {

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct CurlListDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

size_t Append(char* data, size_t size, size_t count, void* out) {
  auto* body = static_cast<std::string*>(out);
  // A schema is small; a registry answering megabytes is not one.
  if (body->size() + size * count > (16u << 20)) return 0;
  body->append(data, size * count);
  return size * count;
}

std::string Escape(CURL* curl, const std::string& text) {
  char* e = curl_easy_escape(curl, text.data(), static_cast<int>(text.size()));
  std::string out = e ? e : text;
  curl_free(e);
  return out;
}

}  // namespace

SchemaRegistry::SchemaRegistry(SchemaRegistryConfig config) : config_(std::move(config)) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  while (!config_.url.empty() && config_.url.back() == '/') config_.url.pop_back();
}

SchemaRegistry::~SchemaRegistry() = default;

std::shared_ptr<SchemaRegistry> SchemaRegistry::Shared(const SchemaRegistryConfig& config) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<SchemaRegistry>> clients;
  std::string key = config.url + '\n' + config.username + '\n' + config.password + '\n' + config.token +
                    '\n' + std::to_string(config.connect_timeout_ms) + '\n' +
                    std::to_string(config.request_timeout_ms);
  std::lock_guard<std::mutex> lock(mu);
  if (auto client = clients[key].lock()) return client;
  auto client = std::make_shared<SchemaRegistry>(config);
  clients[key] = client;
  return client;
}

size_t SchemaRegistry::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void SchemaRegistry::Preload(RegisteredSchema schema) {
  std::lock_guard<std::mutex> lock(mu_);
  int32_t id = schema.id;
  by_id_[id] = std::make_shared<const RegisteredSchema>(std::move(schema));
}

Result<std::string> SchemaRegistry::Get(const std::string& path) {
  ++requests_;
  if (config_.url.empty())
    return Status::Unavailable(
        "no schema registry configured (source.schema_registry.url or "
        "FRESHET_SCHEMA_REGISTRY_URL)");
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return Status::Unavailable("schema registry: curl_easy_init failed");
  std::string url = config_.url + path, body;
  std::unique_ptr<curl_slist, CurlListDeleter> headers(
      curl_slist_append(nullptr, "Accept: application/vnd.schemaregistry.v1+json, application/json"));
  if (!config_.token.empty())
    headers.reset(curl_slist_append(headers.release(), ("Authorization: Bearer " + config_.token).c_str()));
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for DNS timeouts
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.connect_timeout_ms));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.request_timeout_ms));
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  if (!config_.username.empty()) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, config_.username.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, config_.password.c_str());
  }
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK)
    return Status::Unavailable("schema registry " + config_.url + ": " + curl_easy_strerror(rc));
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  if (code == 200) return body;
  std::string message = body.substr(0, 300);
  try {
    auto j = nlohmann::json::parse(body);
    if (j.is_object() && j.contains("message") && j["message"].is_string()) message = j["message"];
  } catch (const std::exception&) {
  }
  std::string what = "schema registry " + config_.url + ": GET " + path + ": HTTP " + std::to_string(code) +
                     (message.empty() ? "" : " " + message);
  if (code == 404) return Status::NotFound(what);
  // 401/403: our credentials, not the record; 5xx and the rest: the
  // registry. Either way the record waits until the registry answers.
  return Status::Unavailable(what);
}

Result<std::shared_ptr<const RegisteredSchema>> SchemaRegistry::Parse(const std::string& body,
                                                                      const std::string& what, int32_t id) {
  auto schema = std::make_shared<RegisteredSchema>();
  schema->id = id;
  try {
    auto j = nlohmann::json::parse(body);
    if (!j.is_object() || !j.contains("schema") || !j["schema"].is_string())
      return Status::Unavailable(what + ": the registry's answer has no \"schema\" string");
    schema->text = j["schema"].get<std::string>();
    schema->type = j.value("schemaType", std::string("AVRO"));
    if (auto refs = j.find("references"); refs != j.end() && refs->is_array()) {
      for (const auto& r : *refs)
        schema->references.push_back(
            {r.value("name", std::string()), r.value("subject", std::string()), r.value("version", 0)});
    }
  } catch (const std::exception& e) {
    return Status::Unavailable(what + ": the registry's answer is not the expected JSON: " + e.what());
  }
  return std::shared_ptr<const RegisteredSchema>(std::move(schema));
}

Result<std::shared_ptr<const RegisteredSchema>> SchemaRegistry::ById(int32_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = by_id_.find(id); it != by_id_.end()) return it->second;
  std::string path = "/schemas/ids/" + std::to_string(id);
  auto body = Get(path);
  if (!body.ok()) {
    if (body.status().code() == StatusCode::kNotFound)
      return Status::NotFound("unknown schema id " + std::to_string(id) + ": " + body.status().message());
    return body.status();
  }
  auto schema = Parse(*body, "schema id " + std::to_string(id), id);
  if (schema.ok()) by_id_[id] = *schema;
  return schema;
}

Result<std::shared_ptr<const RegisteredSchema>> SchemaRegistry::BySubjectVersion(const std::string& subject,
                                                                                 int version) {
  std::lock_guard<std::mutex> lock(mu_);
  auto key = std::make_pair(subject, version);
  if (auto it = by_subject_.find(key); it != by_subject_.end()) return it->second;
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  std::string path =
      "/subjects/" + (curl ? Escape(curl.get(), subject) : subject) + "/versions/" + std::to_string(version);
  auto body = Get(path);
  if (!body.ok()) return body.status();
  auto schema = Parse(*body, "subject " + subject + " version " + std::to_string(version), 0);
  if (schema.ok()) by_subject_[key] = *schema;
  return schema;
}

}  // namespace freshet
