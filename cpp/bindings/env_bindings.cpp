// Binding of the trading env pool: config from keyword arguments (bindings/env_options), market data
// kept alive by the pool object, actions validated here, results handed out as numpy views.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "bindings/env_options.h"
#include "env/env_pool.h"

namespace py = pybind11;
using namespace trader;

namespace {

struct PyPool {
  std::vector<py::object> keep;  // every dataset's arrays, kept alive: the pool reads them
  std::unique_ptr<EnvPool> pool;
  std::vector<int32_t> all_ids;
};

template <typename T>
const char* dtype_name() {
  if (std::is_same_v<T, uint8_t>) return "bool";
  if (std::is_same_v<T, float>) return "float32";
  if (std::is_same_v<T, double>) return "float64";
  if (std::is_same_v<T, int32_t>) return "int32";
  return "int64";
}

py::list env_outputs() {
  py::list out;
  py::dict obs;
  obs["name"] = "obs";
  obs["dtype"] = "float32";
  obs["per_agent"] = true;
  obs["doc"] = "feature row, then the agent's account features (and its quotes in quote modes)";
  out.append(obs);
#define TRADER_OUT(name, ctype, per_agent, doc) \
  {                                            \
    py::dict d;                                \
    d["name"] = #name;                         \
    d["dtype"] = dtype_name<ctype>();          \
    d["per_agent"] = per_agent;                \
    d["doc"] = doc;                            \
    out.append(d);                             \
  }
  TRADER_ENV_OUTPUTS(TRADER_OUT)
#undef TRADER_OUT
  return out;
}

MarketData make_data_checked(PyPool& self, const EnvConfig& cfg,
                              const py::array_t<int64_t, py::array::c_style>& book,
                              const py::array_t<float, py::array::c_style>& features, const py::object& ts,
                              const py::object& records, const py::object& starts, double tick_size,
                              double lot_size, int64_t start_min, int64_t start_max) {
  if (book.ndim() != 3 || book.shape(2) != 4) {
    throw std::invalid_argument("book: expected an int64 array [rows, levels, 4]");
  }
  if (features.ndim() != 2 || features.shape(0) != book.shape(0)) {
    throw std::invalid_argument("features: expected a float32 array [rows, dim] with as many rows as book (" +
                                std::to_string(book.shape(0)) + ")");
  }
  if (!(tick_size > 0 && std::isfinite(tick_size))) throw std::invalid_argument("tick_size: expected > 0 quote");
  if (!(lot_size > 0 && std::isfinite(lot_size))) throw std::invalid_argument("lot_size: expected > 0 base");
  if (!sizes_in_quote(cfg) && std::llround(cfg.trade_size / lot_size) < 1) {
    throw std::invalid_argument("trade_size: expected at least one lot (" + std::to_string(lot_size) + " base), got " +
                                std::to_string(cfg.trade_size));
  }
  self.keep.push_back(book);
  self.keep.push_back(features);
  MarketData d;
  d.tick_size = tick_size;
  d.lot_size = lot_size;
  d.book = book.data();
  d.features = features.data();
  d.rows = book.shape(0);
  d.levels = book.shape(1);
  d.dim = features.shape(1);
  validate_depth(cfg, d.levels);
  using I64 = py::array_t<int64_t, py::array::c_style>;
  if (!ts.is_none()) {
    I64 t = ts.cast<I64>();
    if (t.ndim() != 1 || t.shape(0) != d.rows) {
      throw std::invalid_argument("ts: expected an int64 array [rows] (" + std::to_string(d.rows) + " rows)");
    }
    self.keep.push_back(t);
    d.ts = t.data();
  } else if (cfg.order_latency_ns > 0 || cfg.cancel_latency_ns > 0) {
    throw std::invalid_argument("order_latency_ns / cancel_latency_ns: > 0 needs the row times (ts)");
  } else if (cfg.max_hold_ns > 0) {
    throw std::invalid_argument("max_hold_ns: > 0 needs the row times (ts)");
  } else if (marks_out(cfg.reward)) {
    throw std::invalid_argument(std::string("reward: ") + kRewardTypeNames[static_cast<int>(cfg.reward)] +
                                " needs the row times (ts)");
  }
  if (records.is_none() != starts.is_none()) {
    throw std::invalid_argument("records / starts: pass both (from _core.sample_market) or neither");
  }
  if (!records.is_none()) {
    I64 r = records.cast<I64>();
    I64 s = starts.cast<I64>();
    if (r.ndim() != 2 || r.shape(1) != 4) throw std::invalid_argument("records: expected an int64 array [E, 4]");
    if (s.ndim() != 1 || s.shape(0) != d.rows + 1) {
      throw std::invalid_argument("starts: expected an int64 array [rows + 1] (" + std::to_string(d.rows + 1) + ")");
    }
    const int64_t* sp = s.data();
    for (int64_t i = 0; i <= d.rows; ++i) {
      if (sp[i] < 0 || sp[i] > r.shape(0) || (i > 0 && sp[i] < sp[i - 1])) {
        throw std::invalid_argument("starts: entry " + std::to_string(i) + " is not a non-decreasing index into records");
      }
    }
    self.keep.push_back(r);
    self.keep.push_back(s);
    d.stream = reinterpret_cast<const MarketEvent*>(r.data());
    d.stream_starts = sp;
    for (int64_t i = 0; i < r.shape(0); ++i) {
      if (d.stream[i].kind() == kTradeBuy || d.stream[i].kind() == kTradeSell) {
        d.has_trades = true;
        break;
      }
    }
  } else if (is_quote(cfg.actions)) {
    throw std::invalid_argument("actions: '" + std::string(kActionTypeNames[static_cast<int>(cfg.actions)]) +
                                "' needs the market stream (records, starts from _core.sample_market)");
  }
  const int64_t need_rows = cfg.horizon + 2;
  if (d.rows < need_rows) {
    throw std::invalid_argument("book: " + std::to_string(d.rows) + " rows are fewer than a horizon (" +
                                std::to_string(cfg.horizon) + ") plus 2");
  }
  const int64_t last_start = start_max >= 0 ? start_max : d.rows - 1 - cfg.horizon;
  if (start_max >= 0 && start_max + cfg.horizon >= d.rows) {
    throw std::invalid_argument("start_max: episodes starting at row " + std::to_string(start_max) +
                                " run past the data (" + std::to_string(d.rows) + " rows)");
  }
  if (start_min < 0) throw std::invalid_argument("start_min: expected >= 0, got " + std::to_string(start_min));
  if (start_min > last_start) {
    throw std::invalid_argument("start_min: " + std::to_string(start_min) + " is after the last start row " +
                                std::to_string(last_start));
  }
  for (int64_t r = 0; r < d.rows; ++r) {
    const int64_t* row = d.book + r * d.levels * 4;
    if (row[0] <= 0 || row[2] <= 0 || row[0] >= row[2]) {
      throw std::invalid_argument("book: row " + std::to_string(r) +
                                  " needs a best bid and a best ask with bid < ask (got bid " +
                                  std::to_string(row[0]) + ", ask " + std::to_string(row[2]) + " ticks)");
    }
  }
  if (cfg.guard_window_ns > 0) {
    if (d.ts == nullptr) throw std::invalid_argument("guard_window_ns: > 0 needs the row times (ts)");
    // The guard is up until six windows of rows have passed (cpp/env/move_guard.h): on shorter data it
    // would hold back every order that opens a position.
    const int64_t span = d.ts[d.rows - 1] - d.ts[0];
    if (span < MoveGuard::kArmWindows * cfg.guard_window_ns) {
      const auto s = [](double ns) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", ns / 1e9);
        return std::string(buf);
      };
      throw std::invalid_argument("guard_window_ns: the move guard arms after six windows of rows (" +
                                  s(static_cast<double>(MoveGuard::kArmWindows * cfg.guard_window_ns)) +
                                  " s), but the data spans " +
                                  s(static_cast<double>(span)) + " s, so nothing could open a position; use a window " +
                                  "of at most " + s(static_cast<double>(span) / MoveGuard::kArmWindows) + " s");
    }
  }
  d.start_min = start_min;
  d.start_max = last_start;
  d.guard = MoveGuard(cfg);
  d.prepare();
  if (sizes_in_quote(cfg)) {
    const double ref_price = d.mid[0] * tick_size;
    if (size_lots(cfg, lot_size, ref_price).trade < 1) {
      throw std::invalid_argument("trade_notional: expected at least one lot (" + std::to_string(lot_size) +
                                  " base = " + std::to_string(lot_size * ref_price) +
                                  " quote at the first row's mid " + std::to_string(ref_price) + "), got " +
                                  std::to_string(cfg.trade_notional));
    }
  }
  const int64_t nf = d.rows * d.dim;
  for (int64_t i = 0; i < nf; ++i) {
    if (!std::isfinite(d.features[i])) {
      throw std::invalid_argument("features: non-finite value at row " + std::to_string(i / d.dim) +
                                  ", column " + std::to_string(i % d.dim));
    }
  }
  return d;
}

// One dataset's market data: the book rows and features, and for latencies and quotes the row times
// and the market stream (from _core.sample_market); its tick and lot size and its episode window
// (start_max -1: the last row that leaves a full horizon). `where` prefixes every error (the dataset's
// name, empty for a pool of one).
MarketData make_data(PyPool& self, const EnvConfig& cfg, const std::string& where,
                     const py::array_t<int64_t, py::array::c_style>& book,
                     const py::array_t<float, py::array::c_style>& features, const py::object& ts,
                     const py::object& records, const py::object& starts, double tick_size, double lot_size,
                     int64_t start_min, int64_t start_max) {
  try {
    return make_data_checked(self, cfg, book, features, ts, records, starts, tick_size, lot_size, start_min,
                             start_max);
  } catch (const std::invalid_argument& e) {
    if (where.empty()) throw;
    throw std::invalid_argument(where + ": " + e.what());
  }
}

void start_pool(PyPool& self, const EnvConfig& cfg, std::vector<MarketData> markets, int num_envs, int batch_size,
                int num_threads, uint64_t seed) {
  if (markets.empty()) throw std::invalid_argument("markets: expected at least one dataset");
  self.pool = std::make_unique<EnvPool>(cfg, std::move(markets), num_envs, batch_size, num_threads, seed);
  self.all_ids.resize(static_cast<size_t>(num_envs));
  for (int i = 0; i < num_envs; ++i) self.all_ids[static_cast<size_t>(i)] = i;
}

// Waits for the next block, the GIL released only when it is not full yet (issue 18: releasing and
// taking back the GIL is a per-call cost, and with a worker ahead of the caller the block is often
// full).
size_t recv_block(PyPool& self) {
  if (self.pool->ready()) return self.pool->recv();
  py::gil_scoped_release nogil;
  return self.pool->recv();
}

template <typename T>
py::array view(PyPool& self, py::handle owner, T* base, size_t first, std::vector<ssize_t> tail) {
  std::vector<ssize_t> shape{static_cast<ssize_t>(self.pool->batch_size())};
  size_t per_row = 1;
  for (ssize_t s : tail) {
    shape.push_back(s);
    per_row *= static_cast<size_t>(s);
  }
  return py::array_t<T>(shape, base + first * per_row, owner);
}

// One view per output field, in the order of _core.env_outputs().
py::tuple results(PyPool& self, py::handle owner, size_t first) {
  PoolBuffers& b = self.pool->buffers();
  const ssize_t K = b.agents;
  py::list out;
  out.append(view(self, owner, b.obs.data(), first, {K, static_cast<ssize_t>(b.obs_dim)}));
#define TRADER_VIEW(name, ctype, per_agent, doc)                                                        \
  if constexpr (std::is_same_v<ctype, uint8_t>) {                                                       \
    out.append(view(self, owner, reinterpret_cast<bool*>(b.name.data()), first,                        \
                    per_agent ? std::vector<ssize_t>{K} : std::vector<ssize_t>{}));                    \
  } else {                                                                                             \
    out.append(view(self, owner, b.name.data(), first,                                                 \
                    per_agent ? std::vector<ssize_t>{K} : std::vector<ssize_t>{}));                    \
  }
  TRADER_ENV_OUTPUTS(TRADER_VIEW)
#undef TRADER_VIEW
  return py::tuple(out);
}

// `a`'s data as T: in place when it already is a C-ordered, aligned T array in native byte order,
// else a converted copy that `hold` keeps alive (issue 18: a conversion call per argument cost about
// as much as stepping a few envs, and an async loop sends once per batch).
template <typename T>
const T* data_as(const py::array& a, py::object& hold) {
  if (py::array_t<T, py::array::c_style>::check_(a) &&
      py::detail::check_flags(a.ptr(), py::detail::npy_api::NPY_ARRAY_ALIGNED_)) {
    return static_cast<const T*>(a.data());
  }
  auto converted = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
  hold = converted;
  return converted.data();
}

// obj as an array: itself when it is one (no conversion call), else numpy's conversion (null on failure).
py::array as_array(const py::object& obj) {
  return py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj) : py::array::ensure(obj);
}

// The env ids of a send: every env in order (env_id None) or a 1-D integer array, as int32 (`hold`
// keeps a converted array alive). Unique ids: EnvPool::send checks them as it marks each env in
// flight (no set per call, issue 18).
const int32_t* parse_ids(PyPool& self, const py::object& env_id, size_t& n, py::object& hold) {
  if (env_id.is_none()) {
    n = self.all_ids.size();
    return self.all_ids.data();
  }
  py::array arr = as_array(env_id);
  if (!arr || arr.ndim() != 1 || (arr.dtype().kind() != 'i' && arr.dtype().kind() != 'u')) {
    throw std::invalid_argument("env_id: expected a 1-D integer array");
  }
  n = static_cast<size_t>(arr.shape(0));
  return data_as<int32_t>(arr, hold);
}

// Queue work: the chunked sync path for every env in env order, else tasks. The GIL stays held: a send
// only copies actions into task slots and never waits (issue 18: an async loop sends once per batch, and
// releasing and taking back the GIL is a per-call cost).
void dispatch(PyPool& self, bool all_envs, const int64_t* discrete, const float* continuous, const int32_t* ids,
              size_t n, bool reset) {
  if (all_envs) {
    self.pool->send_all(discrete, continuous, reset);
  } else {
    self.pool->send(discrete, continuous, ids, static_cast<int>(n), reset);
  }
}

void send(PyPool& self, const py::object& action, const py::object& env_id) {
  size_t n = 0;
  py::object hold;
  const int32_t* ids = parse_ids(self, env_id, n, hold);
  // Sync mode, every env in env order: the chunked fast path (no per-env queue entries).
  const bool all_envs = env_id.is_none() && self.pool->batch_size() == self.pool->num_envs();
  const EnvConfig& cfg = self.pool->config();
  const size_t K = static_cast<size_t>(cfg.num_agents);
  const size_t W = static_cast<size_t>(action_width(cfg));
  const bool ints = integer_actions(cfg);
  py::array a = as_array(action);
  if (!a) throw std::invalid_argument("action: expected an array");
  // Accepted shapes: (n, K[, W]), and without the K axis when K == 1, without the W axis when W == 1.
  const size_t want[3] = {n, K > 1 ? K : W, W}, full[3] = {n, K, W};
  const size_t want_nd = 1 + (K > 1) + (!ints && W > 1), full_nd = 2 + (!ints && W > 1);
  auto shape_is = [&](const size_t* dims, size_t nd) {
    if (static_cast<size_t>(a.ndim()) != nd) return false;
    for (size_t i = 0; i < nd; ++i) {
      if (static_cast<size_t>(a.shape(static_cast<ssize_t>(i))) != dims[i]) return false;
    }
    return true;
  };
  if (!shape_is(want, want_nd) && !shape_is(full, full_nd)) {
    auto text = [](const size_t* dims, size_t nd) {
      std::string w = "(";
      for (size_t i = 0; i < nd; ++i) w += (i ? ", " : "") + std::to_string(dims[i]);
      return w + (nd == 1 ? ",)" : ")");
    };
    std::vector<size_t> got(static_cast<size_t>(a.ndim()));
    for (size_t i = 0; i < got.size(); ++i) got[i] = static_cast<size_t>(a.shape(static_cast<ssize_t>(i)));
    const bool same = want_nd == full_nd && std::equal(want, want + want_nd, full);
    throw std::invalid_argument("action: expected shape " + text(want, want_nd) +
                                (same ? "" : " or " + text(full, full_nd)) + ", got " + text(got.data(), got.size()));
  }
  const char kind = a.dtype().kind();
  // The messages are built only on an error (issue 18: send runs once per batch in async loops).
  auto mode = [&] { return std::string(kActionTypeNames[static_cast<int>(cfg.actions)]); };
  if (!ints) {
    if (kind != 'f') {
      throw std::invalid_argument("action: expected a float array (" + mode() + " mode: values in [-1, 1])");
    }
    py::object converted;
    const float* p = data_as<float>(a, converted);
    for (size_t i = 0; i < n * K * W; ++i) {
      if (!(p[i] >= -1.0f && p[i] <= 1.0f)) {
        throw std::invalid_argument("action: value " + std::to_string(p[i]) + " at index " + std::to_string(i) +
                                    " is not in [-1, 1]");
      }
    }
    dispatch(self, all_envs, nullptr, p, ids, n, false);
  } else {
    const int64_t count = cfg.actions == ActionType::kDiscrete
                              ? 3
                              : (cfg.quote_levels + 1) * (cfg.quote_levels + 1) * (cfg.quote_flatten ? 2 : 1);
    auto what = [&] {
      return cfg.actions == ActionType::kDiscrete
                 ? std::string("0 (hold), 1 (buy) or 2 (sell)")
                 : "a quote action in [0, " + std::to_string(count) + ") (trader.sim.encode_quote)";
    };
    if (kind != 'i' && kind != 'u') {
      throw std::invalid_argument("action: expected an integer array (" + mode() + " mode: " + what() + ")");
    }
    py::object converted;
    const int64_t* p = data_as<int64_t>(a, converted);
    for (size_t i = 0; i < n * K; ++i) {
      if (p[i] < 0 || p[i] >= count) {
        throw std::invalid_argument("action: value " + std::to_string(p[i]) + " at index " + std::to_string(i) +
                                    " is not " + what());
      }
    }
    dispatch(self, all_envs, p, nullptr, ids, n, false);
  }
}

}  // namespace

void bind_env(py::module_& m) {
  m.def("env_spec", &env_spec, "The env's options: list of dicts name, type, default, unit, doc, choices.");
  m.def(
      "check_config",
      [](py::kwargs kw) {
        return options_dict(parse_config(kw));
      },
      "Parse and validate env options as EnvPool does; returns every option (defaults filled in).");
  m.def("env_outputs", &env_outputs, "The env's output fields, in recv() order: dicts name, dtype, per_agent, doc.");
  py::class_<PyPool>(m, "EnvPool", "N trading envs stepped by C++ threads; see trader.sim for the Python API.")
      .def(py::init([](py::array_t<int64_t, py::array::c_style> book, py::array_t<float, py::array::c_style> features,
                       int num_envs, int batch_size, int num_threads, uint64_t seed, py::object ts,
                       py::object records, py::object starts, py::kwargs kw) {
             auto self = std::make_unique<PyPool>();
             EnvConfig cfg = parse_config(kw);
             std::vector<MarketData> markets;
             markets.push_back(make_data(*self, cfg, "", book, features, ts, records, starts, cfg.tick_size,
                                         cfg.lot_size, cfg.start_min, cfg.start_max));
             start_pool(*self, cfg, std::move(markets), num_envs, batch_size, num_threads, seed);
             return self;
           }),
           py::arg("book"), py::arg("features"), py::arg("num_envs"), py::arg("batch_size"),
           py::arg("num_threads"), py::arg("seed"), py::kw_only(), py::arg("ts") = py::none(),
           py::arg("records") = py::none(), py::arg("starts") = py::none())
      .def_static("from_markets",
           [](const py::list& markets, int num_envs, int batch_size, int num_threads, uint64_t seed, py::kwargs kw) {
             auto self = std::make_unique<PyPool>();
             EnvConfig cfg = parse_config(kw);
             std::vector<MarketData> data;
             for (auto item : markets) {
               const py::dict m = item.cast<py::dict>();
               const auto get = [&](const char* key) {
                 if (!m.contains(key)) throw std::invalid_argument(std::string("markets: an entry lacks '") + key + "'");
                 return py::reinterpret_borrow<py::object>(m[key]);
               };
               const std::string name = get("name").cast<std::string>();
               data.push_back(make_data(
                   *self, cfg, name.empty() ? "dataset " + std::to_string(data.size()) : name,
                   get("book").cast<py::array_t<int64_t, py::array::c_style>>(),
                   get("features").cast<py::array_t<float, py::array::c_style>>(), get("ts"), get("records"),
                   get("starts"), get("tick_size").cast<double>(), get("lot_size").cast<double>(),
                   get("start_min").cast<int64_t>(), get("start_max").cast<int64_t>()));
             }
             start_pool(*self, cfg, std::move(data), num_envs, batch_size, num_threads, seed);
             return self;
           },
           py::arg("markets"), py::arg("num_envs"), py::arg("batch_size"), py::arg("num_threads"), py::arg("seed"),
           "A pool over several datasets: markets is a list of dicts (name, book, features, ts, records, starts, "
           "tick_size, lot_size, start_min, start_max); each episode runs inside one of them, drawn with weight "
           "its number of episode starts; tick_size, lot_size, start_min and start_max options are the "
           "datasets' own.")
      .def("send", &send, py::arg("action"), py::arg("env_id") = py::none(),
           "Queue actions [batch, ...] for the envs `env_id` (a 1-D integer array; default: every env, in order). "
           "Checks the shape ((n, K, W), or without the K and W axes where they are 1), the dtype (integers for "
           "discrete and quote actions, floats in [-1, 1] for continuous ones), each value's range and the ids "
           "(each in range, given once, none already in flight), in one call with no numpy work.")
      .def("send_reset",
           [](PyPool& self, const py::object& env_id) {
             size_t n = 0;
             py::object hold;
             const int32_t* ids = parse_ids(self, env_id, n, hold);
             const bool all_envs = env_id.is_none() && self.pool->batch_size() == self.pool->num_envs();
             dispatch(self, all_envs, nullptr, nullptr, ids, n, true);
           },
           py::arg("env_id") = py::none())
      .def("recv",
           [](py::object self_obj) {
             PyPool& self = self_obj.cast<PyPool&>();
             const size_t first = recv_block(self);
             return results(self, self_obj, first);
           },
           "Wait for a batch; returns views in the order of env_outputs(), valid until the block is reused.")
      .def("recv_first",
           [](PyPool& self) { return recv_block(self); },
           "Wait for a batch; returns the index of its first row: views(first) are its results and "
           "done_view(first) their terminated | truncated.")
      .def("done_view",
           [](py::object self_obj, size_t first) {
             PyPool& self = self_obj.cast<PyPool&>();
             const size_t B = static_cast<size_t>(self.pool->batch_size());
             if (first % B != 0 || first >= self.pool->buffers().rows) {
               throw std::invalid_argument("first: expected a row index returned by recv_first");
             }
             return py::array(py::dtype("bool"), {static_cast<ssize_t>(B)}, {static_cast<ssize_t>(1)},
                              self.pool->buffers().done.data() + first, self_obj);
           },
           py::arg("first"), "terminated | truncated of the block starting at row `first`.")
      .def("views", [](py::object self_obj, size_t first) {
             PyPool& self = self_obj.cast<PyPool&>();
             const size_t B = static_cast<size_t>(self.pool->batch_size());
             if (first % B != 0 || first >= self.pool->buffers().rows) {
               throw std::invalid_argument("first: expected a row index returned by recv_first");
             }
             return results(self, self_obj, first);
           }, py::arg("first"),
           "The views of the block starting at row `first` (they stay valid: cache them per block).")
      .def("obs_buffer",
           [](py::object self_obj) {
             PoolBuffers& b = self_obj.cast<PyPool&>().pool->buffers();
             return py::array_t<float>({static_cast<ssize_t>(b.rows), static_cast<ssize_t>(b.agents),
                                        static_cast<ssize_t>(b.obs_dim)},
                                       b.obs.data(), self_obj);
           },
           "The observations of every block, [rows, K, obs_dim]: the memory behind recv's obs views (it never "
           "moves), e.g. to register as page-locked memory once.")
      .def("seed", [](PyPool& self, uint64_t seed) { self.pool->seed(seed); }, py::arg("seed"))
      .def_property_readonly("num_envs", [](PyPool& s) { return s.pool->num_envs(); })
      .def_property_readonly("batch_size", [](PyPool& s) { return s.pool->batch_size(); })
      .def_property_readonly("num_threads", [](PyPool& s) { return s.pool->num_threads(); })
      .def_property_readonly("num_agents", [](PyPool& s) { return s.pool->config().num_agents; })
      .def_property_readonly("obs_dim", [](PyPool& s) { return s.pool->buffers().obs_dim; })
      .def_property_readonly("actions",
                             [](PyPool& s) { return kActionTypeNames[static_cast<int>(s.pool->config().actions)]; })
      .def_property_readonly("has_trades",
                             [](PyPool& s) {
                               for (const MarketData& m : s.pool->markets()) {
                                 if (!m.has_trades) return false;
                               }
                               return true;
                             }, "every dataset of the pool has trades in its market stream")
      .def_property_readonly("rows", [](PyPool& s) {
        py::list out;
        for (const MarketData& m : s.pool->markets()) out.append(m.rows);
        return out;
      }, "book rows of each dataset, in the order given");
}
