// The env's options from Python: one parser per C++ type of the table in env/spec.h, the table as
// Python dicts, and a config back as a dict.
#include "bindings/env_options.h"

#include <iterator>
#include <set>
#include <stdexcept>
#include <string>

namespace py = pybind11;
using namespace trader;

namespace {

// ---- Options: one parser per C++ type of the table in env/spec.h ----------------------------------
template <typename T>
struct Option;

// Python and numpy booleans (refused where a number is expected, required where a flag is).
bool is_bool(const py::handle& v) {
  return py::isinstance<py::bool_>(v) || (py::hasattr(v, "dtype") && py::str(v.attr("dtype").attr("kind")).cast<std::string>() == "b");
}

template <>
struct Option<int64_t> {
  static constexpr const char* type_name = "int";
  static int64_t parse(const py::handle& v, const char* name) {
    if (!PyIndex_Check(v.ptr()) || is_bool(v)) {
      throw std::invalid_argument(std::string(name) + ": expected an integer, got " + std::string(py::repr(v)));
    }
    return py::int_(py::reinterpret_borrow<py::object>(v)).cast<int64_t>();
  }
  static py::object to_py(int64_t v) { return py::int_(v); }
  static py::object choices() { return py::none(); }
};

template <>
struct Option<double> {
  static constexpr const char* type_name = "float";
  static double parse(const py::handle& v, const char* name) {
    if (!(PyFloat_Check(v.ptr()) || PyIndex_Check(v.ptr()) || py::hasattr(v, "__float__")) || is_bool(v) ||
        PyComplex_Check(v.ptr())) {
      throw std::invalid_argument(std::string(name) + ": expected a number, got " + std::string(py::repr(v)));
    }
    return py::float_(py::reinterpret_borrow<py::object>(v)).cast<double>();
  }
  static py::object to_py(double v) { return py::float_(v); }
  static py::object choices() { return py::none(); }
};

template <>
struct Option<bool> {
  static constexpr const char* type_name = "bool";
  static bool parse(const py::handle& v, const char* name) {
    if (!is_bool(v)) {
      throw std::invalid_argument(std::string(name) + ": expected True or False, got " + std::string(py::repr(v)));
    }
    return PyObject_IsTrue(v.ptr()) == 1;
  }
  static py::object to_py(bool v) { return py::bool_(v); }
  static py::object choices() { return py::none(); }
};

template <typename E, const char* const* Names, size_t N>
struct EnumOption {
  static constexpr const char* type_name = "str";
  static E parse(const py::handle& v, const char* name) {
    const std::string got = py::isinstance<py::str>(v) ? v.cast<std::string>() : std::string(py::repr(v));
    std::string allowed;
    for (size_t i = 0; i < N; ++i) {
      if (got == Names[i]) return static_cast<E>(i);
      allowed += (i ? ", '" : "'") + std::string(Names[i]) + "'";
    }
    throw std::invalid_argument(std::string(name) + ": expected one of " + allowed + ", got '" + got + "'");
  }
  static py::object to_py(E v) { return py::str(Names[static_cast<size_t>(v)]); }
  static py::object choices() {
    py::list out;
    for (size_t i = 0; i < N; ++i) out.append(py::str(Names[i]));
    return out;
  }
};
template <>
struct Option<ActionType> : EnumOption<ActionType, kActionTypeNames, std::size(kActionTypeNames)> {};
template <>
struct Option<QueueModel> : EnumOption<QueueModel, kQueueModelNames, std::size(kQueueModelNames)> {};
template <>
struct Option<RewardType> : EnumOption<RewardType, kRewardTypeNames, std::size(kRewardTypeNames)> {};
template <>
struct Option<GuardSides> : EnumOption<GuardSides, kGuardSidesNames, std::size(kGuardSidesNames)> {};

}  // namespace

EnvConfig parse_config(const py::dict& kw) {
  EnvConfig c;
  static const std::set<std::string> known = {
#define TRADER_NAME(name, type, def, unit, doc) #name,
      TRADER_ENV_OPTIONS(TRADER_NAME)
#undef TRADER_NAME
  };
  for (auto item : kw) {
    const std::string key = py::str(item.first);
    if (!known.count(key)) throw std::invalid_argument("unknown option '" + key + "'");
  }
#define TRADER_PARSE(name, ctype, def, unit, doc) \
  if (kw.contains(#name)) c.name = Option<ctype>::parse(kw[#name], #name);
  TRADER_ENV_OPTIONS(TRADER_PARSE)
#undef TRADER_PARSE
  validate(c);
  return c;
}

py::list env_spec() {
  py::list out;
  const EnvConfig defaults;
#define TRADER_SPEC(name, ctype, def, unit, doc)        \
  {                                                    \
    py::dict d;                                        \
    d["name"] = #name;                                 \
    d["type"] = Option<ctype>::type_name;              \
    d["default"] = Option<ctype>::to_py(defaults.name); \
    d["unit"] = unit;                                  \
    d["doc"] = doc;                                    \
    d["choices"] = Option<ctype>::choices();            \
    out.append(d);                                     \
  }
  TRADER_ENV_OPTIONS(TRADER_SPEC)
#undef TRADER_SPEC
  return out;
}

py::dict options_dict(const EnvConfig& c) {
  py::dict out;
#define TRADER_DICT(name, ctype, def, unit, doc) out[#name] = Option<ctype>::to_py(c.name);
  TRADER_ENV_OPTIONS(TRADER_DICT)
#undef TRADER_DICT
  return out;
}
