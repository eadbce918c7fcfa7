// pybind11 binding of the C++ core: thin, GIL released in hot calls, numpy in and out without copies.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <stdexcept>

#include "book/order_book.h"
#include "book/replay.h"
#include "events/event.h"
#include "events/npy_events.h"

namespace py = pybind11;
using namespace trader;

void bind_env(py::module_& m);  // env_bindings.cpp
void bind_feed(py::module_& m);  // feed_bindings.cpp
void bind_live(py::module_& m);  // live_bindings.cpp

namespace {

using EventArray = py::array_t<Event, 0>;  // no forcecast: a wrong dtype is refused, not converted

const Event* event_ptr(const EventArray& ev) {
  if (ev.ndim() != 1) throw std::invalid_argument("events: expected a 1-D array of the event dtype");
  if (!(ev.flags() & py::array::c_style)) {
    throw std::invalid_argument("events: expected a C-contiguous array");
  }
  return ev.data();
}

Clock parse_clock(const std::string& clock) {
  if (clock == "exchange") return Clock::kExchange;
  if (clock == "local") return Clock::kLocal;
  throw std::invalid_argument("clock: expected 'exchange' or 'local', got '" + clock + "'");
}

py::dict stats_dict(const ReplayStats& s) {
  py::dict d;
  d["events"] = s.events;
  d["book_messages"] = s.book_messages;
  d["snapshots"] = s.snapshots;
  d["level_updates"] = s.level_updates;
  d["missing_deletes"] = s.missing_deletes;
  d["trades"] = s.trades;
  d["ticker_events"] = s.ticker_events;
  d["crossed"] = s.crossed;
  return d;
}

py::dict ref_dict(const EventRef& r) {
  py::dict d;
  d["file"] = r.file;
  d["line"] = r.line;
  d["update_id"] = r.update_id;
  return d;
}

py::list crossed_list(const std::vector<CrossedBook>& v) {
  py::list out;
  for (const auto& c : v) {
    py::dict d = ref_dict(c.at);
    d["bid"] = c.bid;
    d["ask"] = c.ask;
    out.append(d);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "trader C++ core: event records, exact L2 order book, replay";
  PYBIND11_NUMPY_DTYPE(Event, kind, flags, file, line, exch_ts, local_ts, price, qty, update_id,
                       first_update_id, prev_update_id);
  m.attr("EVENT_DTYPE") = py::dtype::of<Event>();
  m.attr("EVENT_SIZE") = sizeof(Event);
  m.attr("EVENT_NPY_DESCR") = kEventNpyDescr;
  py::dict kinds;
  kinds["BOOK_CLEAR"] = static_cast<int>(kBookClear);
  kinds["BOOK_SNAPSHOT"] = static_cast<int>(kBookSnapshot);
  kinds["BOOK_DELTA"] = static_cast<int>(kBookDelta);
  kinds["TRADE"] = static_cast<int>(kTrade);
  kinds["BOOK_TICKER"] = static_cast<int>(kBookTicker);
  m.attr("EVENT_KINDS") = kinds;
  py::dict flags;
  flags["BID"] = static_cast<int>(kFlagBid);
  flags["ASK"] = static_cast<int>(kFlagAsk);
  flags["END_OF_MESSAGE"] = static_cast<int>(kFlagEndOfMessage);
  m.attr("EVENT_FLAGS") = flags;
  bind_env(m);
  bind_feed(m);
  bind_live(m);

  py::class_<OrderBook>(m, "OrderBook", "Exact L2 book in integer ticks and lots.")
      .def(py::init<>())
      .def(
          "set",
          [](OrderBook& b, bool is_bid, int64_t price, int64_t qty) {
            return b.side(is_bid).set(price, qty);
          },
          py::arg("is_bid"), py::arg("price"), py::arg("qty"),
          "Set the absolute size at a price (qty 0 removes). False if removing an absent level.")
      .def("clear", &OrderBook::clear)
      .def("crossed", &OrderBook::crossed)
      .def("num_levels",
           [](const OrderBook& b, bool is_bid) { return is_bid ? b.bids().size() : b.asks().size(); },
           py::arg("is_bid"))
      .def("qty_at",
           [](const OrderBook& b, bool is_bid, int64_t price) {
             return is_bid ? b.bids().qty_at(price) : b.asks().qty_at(price);
           },
           py::arg("is_bid"), py::arg("price"))
      .def(
          "top",
          [](const OrderBook& b, size_t depth) {
            py::array_t<int64_t> out({depth, size_t{4}});
            b.top(out.mutable_data(), depth);
            return out;
          },
          py::arg("depth"), "depth x 4 array: bid price, bid qty, ask price, ask qty (0 past the end).");

  m.def(
      "replay",
      [](const EventArray& events) {
        const Event* p = event_ptr(events);
        const size_t n = static_cast<size_t>(events.shape(0));
        ReplayStats s;
        {
          py::gil_scoped_release nogil;
          s = replay_all(p, n);
        }
        return stats_dict(s);
      },
      py::arg("events"), "Apply every event to a fresh book; returns counts.");

  m.def(
      "sample_top",
      [](const EventArray& events, size_t depth, int64_t interval_ns, const std::string& clock) {
        if (depth == 0) throw std::invalid_argument("depth: expected >= 1 levels");
        const Event* p = event_ptr(events);
        const size_t n = static_cast<size_t>(events.shape(0));
        SamplePlan plan = plan_samples(p, n, interval_ns, parse_clock(clock));
        py::array_t<int64_t> ts(plan.rows);
        py::array_t<int64_t> book({plan.rows, depth, size_t{4}});
        py::array_t<int64_t> flow({plan.rows, size_t{2}});
        {
          py::gil_scoped_release nogil;
          sample_top(p, n, plan, depth, ts.mutable_data(), book.mutable_data(), flow.mutable_data());
        }
        return py::make_tuple(ts, book, flow);
      },
      py::arg("events"), py::arg("depth"), py::arg("interval_ns") = 0, py::arg("clock") = "exchange",
      "Top `depth` levels after every book message (interval_ns=0) or on a time grid.\n"
      "Returns (ts[T] ns, book[T, depth, 4] ticks/lots, trade_flow[T, 2] lots bought/sold).");

  m.def(
      "sample_market",
      [](const EventArray& events, size_t depth, int64_t interval_ns, const std::string& clock) {
        if (depth == 0) throw std::invalid_argument("depth: expected >= 1 levels");
        const Event* p = event_ptr(events);
        const size_t n = static_cast<size_t>(events.shape(0));
        SamplePlan plan = plan_samples(p, n, interval_ns, parse_clock(clock));
        py::array_t<int64_t> ts(plan.rows);
        py::array_t<int64_t> book({plan.rows, depth, size_t{4}});
        py::array_t<int64_t> flow({plan.rows, size_t{2}});
        auto stream = std::make_unique<MarketStream>();
        {
          py::gil_scoped_release nogil;
          sample_top(p, n, plan, depth, ts.mutable_data(), book.mutable_data(), flow.mutable_data(), stream.get());
        }
        // [E, 4] int64 view of the records (exch_ts, price, qty, kind << 56 | prev), owned by a capsule.
        MarketStream* s = stream.release();
        py::capsule owner(s, [](void* q) { delete static_cast<MarketStream*>(q); });
        const ssize_t ne = static_cast<ssize_t>(s->events.size());
        py::array_t<int64_t> records({ne, ssize_t{4}}, {ssize_t{sizeof(MarketEvent)}, ssize_t{8}},
                                     reinterpret_cast<const int64_t*>(s->events.data()), owner);
        py::array_t<int64_t> starts(static_cast<ssize_t>(s->starts.size()), s->starts.data(), owner);
        return py::make_tuple(ts, book, flow, records, starts, s->trades);
      },
      py::arg("events"), py::arg("depth"), py::arg("interval_ns") = 0, py::arg("clock") = "exchange",
      "sample_top plus the market stream between rows: returns (ts, book, trade_flow, records[E, 4] int64\n"
      "(ts ns on the sampling clock, price ticks, qty lots, kind << 56 | previous level size), starts[T + 1], trades).\n"
      "Kinds: 0 bid level, 1 ask level, 2 buy trade, 3 sell trade. records[starts[c]:starts[c + 1]] are\n"
      "applied after row c and before row c + 1.");

  m.def(
      "check_tickers",
      [](const EventArray& events) {
        const Event* p = event_ptr(events);
        const size_t n = static_cast<size_t>(events.shape(0));
        TickerCheck c;
        {
          py::gil_scoped_release nogil;
          c = check_tickers(p, n);
        }
        py::dict d;
        d["replay"] = stats_dict(c.replay);
        d["tickers"] = c.tickers;
        d["compared"] = c.compared;
        d["matched"] = c.matched;
        d["mismatched"] = c.mismatched;
        py::list mism;
        for (const auto& mm : c.mismatches) {
          py::dict x = ref_dict(mm.at);
          x["ticker"] = py::make_tuple(mm.ticker[0], mm.ticker[1], mm.ticker[2], mm.ticker[3]);
          x["book"] = py::make_tuple(mm.book[0], mm.book[1], mm.book[2], mm.book[3]);
          mism.append(x);
        }
        d["mismatches"] = mism;
        d["crossed"] = crossed_list(c.crossed);
        return d;
      },
      py::arg("events"),
      "Rebuild the book and compare best bid/ask price and size with every bookTicker at an equal "
      "update id.");
}
