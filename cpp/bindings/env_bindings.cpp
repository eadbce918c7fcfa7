// Binding of the trading env pool: config from keyword arguments (unknown keys refused), market data
// kept alive by the pool object, actions validated here, results handed out as numpy views.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

#include "env/env_pool.h"

namespace py = pybind11;
using namespace trader;

namespace {

struct PyPool {
  py::array_t<int64_t> book;
  py::array_t<float> features;
  std::unique_ptr<EnvPool> pool;
  std::vector<int32_t> all_ids;
};

EnvConfig parse_config(const py::dict& kw) {
  EnvConfig c;
  static const std::set<std::string> known = {
      "horizon", "num_agents", "continuous", "trade_lots", "max_position_lots", "allow_short",
      "latency_steps", "fee_bps", "initial_cash", "reward_scale", "ruin_fraction", "tick_size",
      "lot_size", "start_min", "start_max"};
  for (auto item : kw) {
    const std::string key = py::str(item.first);
    if (!known.count(key)) throw std::invalid_argument("unknown option '" + key + "'");
  }
  auto get_i = [&](const char* k, int64_t& v) { if (kw.contains(k)) v = kw[k].cast<int64_t>(); };
  auto get_d = [&](const char* k, double& v) { if (kw.contains(k)) v = kw[k].cast<double>(); };
  auto get_b = [&](const char* k, bool& v) { if (kw.contains(k)) v = kw[k].cast<bool>(); };
  int64_t agents = c.num_agents;
  get_i("horizon", c.horizon);
  get_i("num_agents", agents);
  get_b("continuous", c.continuous);
  get_i("trade_lots", c.trade_lots);
  get_i("max_position_lots", c.max_position_lots);
  get_b("allow_short", c.allow_short);
  get_i("latency_steps", c.latency_steps);
  get_d("fee_bps", c.fee_bps);
  get_d("initial_cash", c.initial_cash);
  get_d("reward_scale", c.reward_scale);
  get_d("ruin_fraction", c.ruin_fraction);
  get_d("tick_size", c.tick_size);
  get_d("lot_size", c.lot_size);
  get_i("start_min", c.start_min);
  get_i("start_max", c.start_max);
  c.num_agents = static_cast<int>(agents);
  auto need = [](bool ok, const char* field, const std::string& what) {
    if (!ok) throw std::invalid_argument(std::string(field) + ": expected " + what);
  };
  need(c.horizon >= 1, "horizon", ">= 1 steps");
  need(agents >= 1 && agents <= 1024, "num_agents", "1 to 1024");
  need(c.trade_lots >= 1, "trade_lots", ">= 1 lot");
  need(c.max_position_lots >= 1, "max_position_lots", ">= 1 lot");
  need(c.latency_steps >= 0, "latency_steps", ">= 0 steps");
  need(c.fee_bps >= 0 && std::isfinite(c.fee_bps), "fee_bps", "a finite value >= 0");
  need(c.initial_cash > 0 && std::isfinite(c.initial_cash), "initial_cash", "> 0");
  need(std::isfinite(c.reward_scale), "reward_scale", "a finite number");
  need(c.ruin_fraction >= 0 && c.ruin_fraction < 1, "ruin_fraction", "in [0, 1)");
  need(c.tick_size > 0, "tick_size", "> 0");
  need(c.lot_size > 0, "lot_size", "> 0");
  need(c.start_min >= 0, "start_min", ">= 0");
  return c;
}

MarketData make_data(const py::array_t<int64_t>& book, const py::array_t<float>& features,
                     const EnvConfig& cfg) {
  if (book.ndim() != 3 || book.shape(2) != 4) {
    throw std::invalid_argument("book: expected an int64 array [rows, levels, 4]");
  }
  if (features.ndim() != 2 || features.shape(0) != book.shape(0)) {
    throw std::invalid_argument("features: expected a float32 array [rows, dim] with as many rows as book (" +
                                std::to_string(book.shape(0)) + ")");
  }
  MarketData d;
  d.book = book.data();
  d.features = features.data();
  d.rows = book.shape(0);
  d.levels = book.shape(1);
  d.dim = features.shape(1);
  const int64_t need_rows = cfg.horizon + cfg.latency_steps + 2;
  if (d.rows < need_rows) {
    throw std::invalid_argument("book: " + std::to_string(d.rows) + " rows are fewer than a horizon (" +
                                std::to_string(cfg.horizon) + ") plus latency plus 2");
  }
  const int64_t last_start = cfg.start_max >= 0 ? cfg.start_max : d.rows - 1 - cfg.horizon - cfg.latency_steps;
  if (cfg.start_max >= 0 && cfg.start_max + cfg.horizon + cfg.latency_steps >= d.rows) {
    throw std::invalid_argument("start_max: episodes starting at row " + std::to_string(cfg.start_max) +
                                " run past the data (" + std::to_string(d.rows) + " rows)");
  }
  if (cfg.start_min > last_start) {
    throw std::invalid_argument("start_min: " + std::to_string(cfg.start_min) + " is after the last start row " +
                                std::to_string(last_start));
  }
  d.mid.resize(static_cast<size_t>(d.rows));
  for (int64_t r = 0; r < d.rows; ++r) {
    const int64_t* row = d.book + r * d.levels * 4;
    if (row[0] <= 0 || row[2] <= 0 || row[0] >= row[2]) {
      throw std::invalid_argument("book: row " + std::to_string(r) +
                                  " needs a best bid and a best ask with bid < ask (got bid " +
                                  std::to_string(row[0]) + ", ask " + std::to_string(row[2]) + " ticks)");
    }
    d.mid[static_cast<size_t>(r)] = 0.5 * static_cast<double>(row[0] + row[2]);
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

py::tuple results(PyPool& self, py::handle owner, size_t first) {
  PoolBuffers& b = self.pool->buffers();
  const ssize_t K = b.agents;
  return py::make_tuple(
      view(self, owner, b.obs.data(), first, {K, static_cast<ssize_t>(b.obs_dim)}),
      view(self, owner, b.reward.data(), first, {K}),
      view(self, owner, reinterpret_cast<bool*>(b.terminated.data()), first, {}),
      view(self, owner, reinterpret_cast<bool*>(b.truncated.data()), first, {}),
      view(self, owner, b.env_id.data(), first, {}),
      view(self, owner, b.t.data(), first, {}),
      view(self, owner, b.episode_length.data(), first, {}),
      view(self, owner, b.episode_return.data(), first, {K}),
      view(self, owner, b.position.data(), first, {K}),
      view(self, owner, b.equity.data(), first, {K}),
      view(self, owner, b.fees.data(), first, {K}),
      view(self, owner, b.filled.data(), first, {K}),
      view(self, owner, b.unfilled.data(), first, {K}));
}

std::vector<int32_t> parse_ids(PyPool& self, const py::object& env_id, size_t& n) {
  if (env_id.is_none()) {
    n = self.all_ids.size();
    return self.all_ids;
  }
  py::array arr = py::array::ensure(env_id);
  if (!arr || arr.ndim() != 1 || (arr.dtype().kind() != 'i' && arr.dtype().kind() != 'u')) {
    throw std::invalid_argument("env_id: expected a 1-D integer array");
  }
  auto ids = py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(arr);
  n = static_cast<size_t>(ids.shape(0));
  std::vector<int32_t> out(ids.data(), ids.data() + n);
  std::set<int32_t> uniq(out.begin(), out.end());
  if (uniq.size() != out.size()) throw std::invalid_argument("env_id: ids must be unique");
  return out;
}

// Queue work with the GIL released: the chunked sync path for every env in env order, else tasks.
void dispatch(PyPool& self, bool all_envs, const int64_t* discrete, const float* continuous,
              const std::vector<int32_t>& ids, bool reset) {
  py::gil_scoped_release nogil;
  if (all_envs) {
    self.pool->send_all(discrete, continuous, reset);
  } else {
    self.pool->send(discrete, continuous, ids.data(), static_cast<int>(ids.size()), reset);
  }
}

void send(PyPool& self, const py::object& action, const py::object& env_id) {
  size_t n = 0;
  std::vector<int32_t> ids = parse_ids(self, env_id, n);
  // Sync mode, every env in env order: the chunked fast path (no per-env queue entries).
  const bool all_envs = env_id.is_none() && self.pool->batch_size() == self.pool->num_envs();
  const EnvConfig& cfg = self.pool->config();
  const size_t K = static_cast<size_t>(cfg.num_agents);
  py::array a = py::array::ensure(action);
  if (!a) throw std::invalid_argument("action: expected an array");
  const bool shape_ok = (a.ndim() == 1 && K == 1 && static_cast<size_t>(a.shape(0)) == n) ||
                        (a.ndim() == 2 && static_cast<size_t>(a.shape(0)) == n &&
                         static_cast<size_t>(a.shape(1)) == K);
  const std::string want_shape = K == 1 ? "(" + std::to_string(n) + ",)" :
                                          "(" + std::to_string(n) + ", " + std::to_string(K) + ")";
  if (!shape_ok) throw std::invalid_argument("action: expected shape " + want_shape);
  const char kind = a.dtype().kind();
  if (cfg.continuous) {
    if (kind != 'f') throw std::invalid_argument("action: expected a float array (continuous mode: target position in [-1, 1])");
    auto f = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);
    const float* p = f.data();
    for (size_t i = 0; i < n * K; ++i) {
      if (!(p[i] >= -1.0f && p[i] <= 1.0f)) {
        throw std::invalid_argument("action: value " + std::to_string(p[i]) + " at index " + std::to_string(i) +
                                    " is not in [-1, 1]");
      }
    }
    dispatch(self, all_envs, nullptr, p, ids, false);
  } else {
    if (kind != 'i' && kind != 'u') {
      throw std::invalid_argument("action: expected an integer array (discrete mode: 0 hold, 1 buy, 2 sell)");
    }
    auto d = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    const int64_t* p = d.data();
    for (size_t i = 0; i < n * K; ++i) {
      if (p[i] < 0 || p[i] > 2) {
        throw std::invalid_argument("action: value " + std::to_string(p[i]) + " at index " + std::to_string(i) +
                                    " is not 0 (hold), 1 (buy) or 2 (sell)");
      }
    }
    dispatch(self, all_envs, p, nullptr, ids, false);
  }
}

}  // namespace

void bind_env(py::module_& m) {
  py::class_<PyPool>(m, "EnvPool", "N trading envs stepped by C++ threads; see trader.sim for the Python API.")
      .def(py::init([](py::array_t<int64_t, py::array::c_style> book, py::array_t<float, py::array::c_style> features,
                       int num_envs, int batch_size, int num_threads, uint64_t seed, py::kwargs kw) {
             auto self = std::make_unique<PyPool>();
             self->book = book;
             self->features = features;
             EnvConfig cfg = parse_config(kw);
             MarketData data = make_data(book, features, cfg);
             self->pool = std::make_unique<EnvPool>(cfg, std::move(data), num_envs, batch_size, num_threads, seed);
             self->all_ids.resize(static_cast<size_t>(num_envs));
             for (int i = 0; i < num_envs; ++i) self->all_ids[static_cast<size_t>(i)] = i;
             return self;
           }),
           py::arg("book"), py::arg("features"), py::arg("num_envs"), py::arg("batch_size"),
           py::arg("num_threads"), py::arg("seed"))
      .def("send", &send, py::arg("action"), py::arg("env_id") = py::none())
      .def("send_reset",
           [](PyPool& self, const py::object& env_id) {
             size_t n = 0;
             std::vector<int32_t> ids = parse_ids(self, env_id, n);
             const bool all_envs = env_id.is_none() && self.pool->batch_size() == self.pool->num_envs();
             dispatch(self, all_envs, nullptr, nullptr, ids, true);
           },
           py::arg("env_id") = py::none())
      .def("recv",
           [](py::object self_obj) {
             PyPool& self = self_obj.cast<PyPool&>();
             size_t first;
             {
               py::gil_scoped_release nogil;
               first = self.pool->recv();
             }
             return results(self, self_obj, first);
           },
           "Wait for a batch; returns views (obs, reward, terminated, truncated, env_id, t, episode_length, "
           "episode_return, position, equity, fees, filled, unfilled) valid until the block is reused.")
      .def("seed", [](PyPool& self, uint64_t seed) { self.pool->seed(seed); }, py::arg("seed"))
      .def_property_readonly("num_envs", [](PyPool& s) { return s.pool->num_envs(); })
      .def_property_readonly("batch_size", [](PyPool& s) { return s.pool->batch_size(); })
      .def_property_readonly("num_threads", [](PyPool& s) { return s.pool->num_threads(); })
      .def_property_readonly("num_agents", [](PyPool& s) { return s.pool->config().num_agents; })
      .def_property_readonly("obs_dim", [](PyPool& s) { return s.pool->buffers().obs_dim; })
      .def_property_readonly("continuous", [](PyPool& s) { return s.pool->config().continuous; })
      .def_property_readonly("rows", [](PyPool& s) { return s.pool->data().rows; });
}
