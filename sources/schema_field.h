// A top-level field that a registry schema (Avro, Protobuf) declares, as
// `freshet inspect` lists it and a view definition reads it.
#pragma once

#include <string>

namespace freshet {

struct SchemaField {
  std::string pointer;      // "/customer"
  std::string column_type;  // the definition's type: text, bigint, double, boolean, numeric, date,
                            // timestamptz, uuid, jsonb
  std::string declared;  // what the schema says: "long", "union [null, string]", "decimal(12,2)", "Timestamp"
};

}  // namespace freshet
