// The store-neutral shape of a view's rows: the table a projection writes
// (TableSpec, ColumnSpec, Merge), one row change (RowWrite) and the offset
// each flush advances with its rows (OffsetAdvance). Every store (Postgres,
// RocksDB) and every projection speaks these types; none of them needs a
// database client, so this header includes none.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace freshet {

// How a written value combines with the stored one.
enum class Merge { kReplace, kAdd, kMin, kMax };

struct ColumnSpec {
  std::string name;
  std::string sql_type;           // "text", "bigint", "double precision", ...
  Merge merge = Merge::kReplace;  // kAdd: counters and sums written as deltas
};

struct TableSpec {
  // Always explicit: with the default search_path a role named like the
  // `freshet` schema would otherwise create tables inside it.
  std::string schema = "public";
  std::string view_name;      // the stable SQL view readers query
  std::string version = "1";  // rows live in table <view_name>__v<version>
  std::vector<ColumnSpec> key_columns;
  std::vector<ColumnSpec> value_columns;
  // What the stable SQL view selects from the table; "*" when empty.
  std::string view_select;
  // When set, the SQL view aggregates the table: "... GROUP BY <this>".
  std::string view_group_by;
  std::string table_name() const { return view_name + "__v" + version; }
};

// One row to upsert (or delete); values are in text form, std::nullopt is
// SQL NULL. A flush holds at most one RowWrite per key.
struct RowWrite {
  std::vector<std::string> key;
  std::vector<std::optional<std::string>> values;  // empty when deleted
  bool deleted = false;
  // The last event folded into this write (for change feeds); -1: unknown.
  int32_t partition = -1;
  int64_t offset = -1;
};

// One partition's offset, advanced in the same commit as the rows it covers.
struct OffsetAdvance {
  int32_t partition = 0;
  int64_t expected_next = -1;  // what the store holds now; -1: nothing stored yet
  int64_t next_offset = 0;     // the first offset NOT yet reflected in the rows
};

}  // namespace freshet
