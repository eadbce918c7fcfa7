// Binding of the live execution kernel (exec/live_kernel.h): rows in as numpy arrays, orders, fills
// and outputs back as plain Python values.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>

#include "bindings/env_options.h"
#include "exec/live_kernel.h"

namespace py = pybind11;
using namespace trader;

namespace {

using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;

// One agent's action, checked as the pool's send() checks it: an int for discrete and quote, floats
// in [-1, 1] for the continuous modes (action_width of them).
struct Action {
  int64_t discrete = 0;
  float continuous[3] = {0, 0, 0};
};

Action parse_action(const LiveKernel& k, const py::object& action) {
  const EnvConfig& cfg = k.config();
  Action a;
  const std::string mode = kActionTypeNames[static_cast<int>(cfg.actions)];
  if (cfg.actions == ActionType::kDiscrete || cfg.actions == ActionType::kQuote) {
    const int64_t count = cfg.actions == ActionType::kDiscrete
                              ? 3
                              : (cfg.quote_levels + 1) * (cfg.quote_levels + 1) * (cfg.quote_flatten ? 2 : 1);
    if (!PyIndex_Check(action.ptr())) {
      throw std::invalid_argument("action: expected an integer (" + mode + " mode), got " + std::string(py::repr(action)));
    }
    a.discrete = py::int_(action).cast<int64_t>();
    if (a.discrete < 0 || a.discrete >= count) {
      throw std::invalid_argument("action: " + std::to_string(a.discrete) + " is not in [0, " + std::to_string(count) +
                                  ") (" + mode + " mode)");
    }
    return a;
  }
  const size_t width = cfg.actions == ActionType::kQuoteContinuous ? (cfg.quote_flatten ? 3 : 2) : 1;
  F32 f = F32::ensure(action);
  if (!f || static_cast<size_t>(f.size()) != width) {
    throw std::invalid_argument("action: expected " + std::to_string(width) + " float(s) in [-1, 1] (" + mode + " mode)");
  }
  for (size_t i = 0; i < width; ++i) {
    const float x = f.data()[i];
    if (!(x >= -1.0f && x <= 1.0f)) {
      throw std::invalid_argument("action: value " + std::to_string(x) + " at index " + std::to_string(i) +
                                  " is not in [-1, 1]");
    }
    a.continuous[i] = x;
  }
  return a;
}

py::dict side_dict(const OrderPlan::Side& s) {
  py::dict d;
  d["price"] = s.price;
  d["lots"] = s.lots;
  d["seq"] = s.seq;
  d["kept"] = s.kept;
  d["cancel"] = s.cancel;
  return d;
}

}  // namespace

void bind_live(py::module_& m) {
  py::class_<LiveKernel>(m, "LiveKernel",
                         "The training env with one agent over a growing live market: rows in, the orders an "
                         "action implies, fills and observations out (exec/live_kernel.h).")
      .def(py::init([](int64_t levels, int64_t dim, double tick_size, double lot_size, py::kwargs kw) {
             return std::make_unique<LiveKernel>(parse_config(kw), levels, dim, tick_size, lot_size);
           }),
           py::arg("levels"), py::arg("dim"), py::arg("tick_size"), py::arg("lot_size"))
      .def(
          "append",
          [](LiveKernel& k, const I64& book, const F32& features, int64_t ts, const I64& records) {
            if (book.ndim() != 2 || book.shape(0) != k.levels() || book.shape(1) != 4) {
              throw std::invalid_argument("book: expected an int64 array [levels, 4] (" + std::to_string(k.levels()) +
                                          " levels)");
            }
            if (features.ndim() != 1 || features.shape(0) != k.dim()) {
              throw std::invalid_argument("features: expected a float32 array [dim] (" + std::to_string(k.dim()) +
                                          " columns)");
            }
            if (records.ndim() != 2 || records.shape(1) != 4) {
              throw std::invalid_argument("records: expected an int64 array [E, 4] (exch_ts, price, qty, kind << 56 | prev)");
            }
            const auto* ev = reinterpret_cast<const MarketEvent*>(records.data());
            for (ssize_t i = 0; i < records.shape(0); ++i) {
              if (ev[i].kind() > kTradeSell || ev[i].qty < 0) {
                throw std::invalid_argument("records: record " + std::to_string(i) + " has kind " +
                                            std::to_string(static_cast<int>(ev[i].kind())) + " and qty " +
                                            std::to_string(ev[i].qty) +
                                            " (expected kind 0-3: bid level, ask level, buy trade, sell trade; qty >= 0)");
              }
            }
            k.append(book.data(), features.data(), ts, ev, static_cast<size_t>(records.shape(0)));
          },
          py::arg("book"), py::arg("features"), py::arg("ts"), py::arg("records"))
      .def("reset", &LiveKernel::reset)
      .def(
          "plan",
          [](const LiveKernel& k, const py::object& action) {
            const Action a = parse_action(k, action);
            const OrderPlan p = k.plan(&a.discrete, a.continuous);
            py::dict d;
            d["market_lots"] = p.market_lots;
            d["close"] = p.close;
            d["bid"] = side_dict(p.side[0]);
            d["ask"] = side_dict(p.side[1]);
            return d;
          },
          py::arg("action"))
      .def(
          "step",
          [](LiveKernel& k, const py::object& action) {
            const Action a = parse_action(k, action);
            k.step(&a.discrete, a.continuous);
          },
          py::arg("action"))
      .def("market", &LiveKernel::market, py::arg("lots"))
      .def("leaves", &LiveKernel::leaves, py::arg("seq"))
      .def("set_account", &LiveKernel::set_account, py::arg("position"), py::arg("cash"), py::arg("cost"))
      .def_property_readonly("obs",
                             [](const LiveKernel& k) {
                               py::array_t<float> out(k.obs_dim());
                               std::copy(k.obs(), k.obs() + k.obs_dim(), out.mutable_data());
                               return out;
                             })
      .def("outputs",
           [](const LiveKernel& k) {
             py::dict d;
             const OutBase& b = k.out();
#define TRADER_OUT_ITEM(name, type, per_agent, doc) d[#name] = py::cast(*b.name);
             TRADER_ENV_OUTPUTS(TRADER_OUT_ITEM)
#undef TRADER_OUT_ITEM
             return d;
           })
      .def("fills",
           [](const LiveKernel& k) {
             py::list out;
             for (const ExecFill& f : k.fills()) out.append(py::make_tuple(f.order, f.buy, f.maker, f.price, f.lots, f.fee));
             return out;
           },
           "Fills of the last step: (order seq or -1 for a market order, buy, maker, price ticks, lots, fee quote).")
      .def_property_readonly("rows", &LiveKernel::rows)
      .def_property_readonly("cursor", &LiveKernel::cursor)
      .def_property_readonly("obs_dim", &LiveKernel::obs_dim)
      .def_property_readonly("cash", &LiveKernel::cash)
      .def_property_readonly("cost", &LiveKernel::cost);
}
