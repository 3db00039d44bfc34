// simdjson On-Demand helpers for the stream parsers' hot path (one parse per SSE event / NDJSON
// line). Includes simdjson.h: only the adapters' .cc files include this header.
// FastJson is confined to the thread that feeds its stream parser.
#pragma once

#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "base/strings.h"

namespace lai::llm::internal {

namespace od = simdjson::ondemand;

// Returned by a fast-path reader for a document it leaves to the nlohmann path (error bodies):
// every error sends the document there, this one just says so on purpose.
constexpr simdjson::error_code kUseFullParse = simdjson::INCORRECT_TYPE;

// A reusable On-Demand parser plus a reusable padded copy of the text it parses: no allocation
// per document once the buffers have grown to the largest one seen. The parsers never emit from
// a document until it was read to its end without error; a document the fast path cannot read
// goes to the nlohmann path, which decides (and words the error) exactly as before.
class FastJson {
 public:
  // Copies `text` into the padded buffer and starts iterating it. The document (and every
  // string_view read from it) is valid until the next Iterate call.
  simdjson::error_code Iterate(std::string_view text, od::document& document) {
    size_t needed = text.size() + simdjson::SIMDJSON_PADDING;
    if (needed > capacity_) {
      capacity_ = std::max(needed, capacity_ * 2);
      buffer_ = std::make_unique<char[]>(capacity_);
    }
    if (!text.empty()) std::memcpy(buffer_.get(), text.data(), text.size());
    std::memset(buffer_.get() + text.size(), 0, simdjson::SIMDJSON_PADDING);
    return parser_.iterate(buffer_.get(), text.size(), capacity_).get(document);
  }

  // Iterate, then ForEachRootField (below) on the document.
  template <typename OnField>
  simdjson::error_code ForEachRootField(std::string_view text, OnField&& on_field);

 private:
  od::parser parser_;
  std::unique_ptr<char[]> buffer_;
  size_t capacity_ = 0;
};

// Calls `on_field(key, value) -> error_code` for every field of `object` in document order; each
// callback must read or Consume its value.
template <typename OnField>
simdjson::error_code ForEachObjectField(od::object& object, OnField&& on_field) {
  for (auto field_result : object) {
    od::field field;
    if (auto error = std::move(field_result).get(field)) return error;
    std::string_view key;
    if (auto error = field.unescaped_key().get(key)) return error;
    if (auto error = on_field(key, field.value())) return error;
  }
  return simdjson::SUCCESS;
}

// Reads `value` whole, validating it as a strict JSON parser would (strings unescaped, numbers
// parsed, literals checked), so that a document the fast path accepts is one nlohmann accepts.
inline simdjson::error_code Consume(od::value value) {
  od::json_type type;
  if (auto error = value.type().get(type)) return error;
  switch (type) {
    case od::json_type::object: {
      od::object object;
      if (auto error = value.get_object().get(object)) return error;
      return ForEachObjectField(object,
                                [](std::string_view, od::value field) { return Consume(field); });
    }
    case od::json_type::array: {
      od::array array;
      if (auto error = value.get_array().get(array)) return error;
      for (auto element_result : array) {
        od::value element;
        if (auto error = std::move(element_result).get(element)) return error;
        if (auto error = Consume(element)) return error;
      }
      return simdjson::SUCCESS;
    }
    case od::json_type::string: {
      std::string_view text;
      return value.get_string().get(text);
    }
    case od::json_type::number: {
      double number;
      return value.get_double().get(number);
    }
    case od::json_type::boolean: {
      bool flag;
      return value.get_bool().get(flag);
    }
    case od::json_type::null: {
      bool is_null = false;
      if (auto error = value.is_null().get(is_null)) return error;
      return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
    }
  }
  return simdjson::INCORRECT_TYPE;
}

// The GetString/GetInt/GetObject rules of parser_base.h on an On-Demand value: a value of another
// type counts as absent (and is still consumed and validated).
inline simdjson::error_code ReadString(od::value value, std::string& out) {
  out.clear();
  od::json_type type;
  if (auto error = value.type().get(type)) return error;
  if (type != od::json_type::string) return Consume(value);
  std::string_view text;
  if (auto error = value.get_string().get(text)) return error;
  out.assign(text);
  return simdjson::SUCCESS;
}
// As above, without the copy: `out` views the parser's buffer, valid until its next Iterate.
inline simdjson::error_code ReadString(od::value value, std::string_view& out) {
  out = {};
  od::json_type type;
  if (auto error = value.type().get(type)) return error;
  if (type != od::json_type::string) return Consume(value);
  return value.get_string().get(out);
}

// Integers as int64 (uint64 wraps like nlohmann's get<int64_t>), other numbers truncated.
inline simdjson::error_code ReadInt(od::value value, int64_t& out) {
  out = 0;
  od::json_type type;
  if (auto error = value.type().get(type)) return error;
  if (type != od::json_type::number) return Consume(value);
  od::number number;
  if (auto error = value.get_number().get(number)) {
    // Integers beyond 64 bits: nlohmann reads them as doubles.
    double as_double;
    if (value.get_double().get(as_double)) return error;
    out = static_cast<int64_t>(as_double);
    return simdjson::SUCCESS;
  }
  switch (number.get_number_type()) {
    case od::number_type::signed_integer:
      out = number.get_int64();
      break;
    case od::number_type::unsigned_integer:
      out = static_cast<int64_t>(number.get_uint64());
      break;
    default:
      out = static_cast<int64_t>(number.get_double());
      break;
  }
  return simdjson::SUCCESS;
}

inline simdjson::error_code ReadBool(od::value value, bool& is_true) {
  is_true = false;
  od::json_type type;
  if (auto error = value.type().get(type)) return error;
  if (type != od::json_type::boolean) return Consume(value);
  return value.get_bool().get(is_true);
}

// Whether `value` is an object (false on error too); when not, it is consumed. Iterate the object
// after a true answer.
inline simdjson::error_code IsObject(od::value& value, bool& is_object) {
  is_object = false;
  od::json_type type;
  if (auto error = value.type().get(type)) return error;
  is_object = type == od::json_type::object;
  return is_object ? simdjson::SUCCESS : Consume(value);
}

inline simdjson::error_code IsArray(od::value& value, bool& is_array) {
  is_array = false;
  od::json_type type;
  if (auto error = value.type().get(type)) return error;
  is_array = type == od::json_type::array;
  return is_array ? simdjson::SUCCESS : Consume(value);
}

// ForEachObjectField on the object `value`.
template <typename OnField>
simdjson::error_code ForEachField(od::value value, OnField&& on_field) {
  od::object object;
  if (auto error = value.get_object().get(object)) return error;
  return ForEachObjectField(object, on_field);
}

// Same for a whole document whose root must be an object; fails unless the document ends after
// it.
template <typename OnField>
simdjson::error_code ForEachRootField(od::document& document, OnField&& on_field) {
  od::object object;
  if (auto error = document.get_object().get(object)) return error;
  if (auto error = ForEachObjectField(object, on_field)) return error;
  // OUT_OF_BOUNDS: no token after the root object.
  const char* location = nullptr;
  return document.current_location().get(location) == simdjson::OUT_OF_BOUNDS
             ? simdjson::SUCCESS
             : simdjson::TRAILING_CONTENT;
}

template <typename OnField>
simdjson::error_code FastJson::ForEachRootField(std::string_view text, OnField&& on_field) {
  od::document document;
  if (auto error = Iterate(text, document)) return error;
  return internal::ForEachRootField(document, on_field);
}

// Calls `on_element(index, value) -> error_code` for each element of the array `value`.
template <typename OnElement>
simdjson::error_code ForEachElement(od::value value, OnElement&& on_element) {
  od::array array;
  if (auto error = value.get_array().get(array)) return error;
  size_t index = 0;
  for (auto element_result : array) {
    od::value element;
    if (auto error = std::move(element_result).get(element)) return error;
    if (auto error = on_element(index++, element)) return error;
  }
  return simdjson::SUCCESS;
}

// ForEachField when `value` is an object; any other value is consumed and read as absent.
template <typename OnField>
simdjson::error_code ForEachFieldIfObject(od::value value, OnField&& on_field) {
  bool is_object = false;
  if (auto error = IsObject(value, is_object); error || !is_object) return error;
  return ForEachField(value, on_field);
}

// ForEachElement when `value` is an array; any other value is consumed and read as absent.
template <typename OnElement>
simdjson::error_code ForEachElementIfArray(od::value value, OnElement&& on_element) {
  bool is_array = false;
  if (auto error = IsArray(value, is_array); error || !is_array) return error;
  return ForEachElement(value, on_element);
}

// The text of an object or array value (consumed), for values kept as JSON text (tool args).
inline simdjson::error_code RawObject(od::value value, std::string_view& out) {
  od::object object;
  if (auto error = value.get_object().get(object)) return error;
  return object.raw_json().get(out);
}

}  // namespace lai::llm::internal
