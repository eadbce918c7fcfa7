// pybind11 binding of the feed parsers (cpp/feed): the GIL is released while a file is read and
// parsed; events come back as a numpy array of the event dtype without a copy.
//
// Errors in the data raise trader._core.FeedParseError (a ValueError) with args
// (file index, line or 0, message, hint); python/trader/data/binance.py turns it into FeedError.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>

#include "feed/binance_feed.h"
#include "feed/binance_scanner.h"
#include "feed/decimal.h"

namespace py = pybind11;
using namespace trader;
using namespace trader::feed;

namespace {

PyObject* g_feed_error = nullptr;  // the Python exception type; lives as long as the interpreter

Units units_arg(const std::string& s, const char* what) {
  Units v = 0;
  if (!s.empty() && !parse_u128(s, v)) throw std::invalid_argument(std::string(what) + ": expected decimal digits");
  return v;
}

py::list counts(const std::vector<std::pair<std::string, uint64_t>>& v) {
  py::list out;
  for (const auto& kv : v) out.append(py::make_tuple(kv.first, kv.second));
  return out;
}

py::list places(const std::vector<Place>& v) {
  py::list out;
  for (const auto& p : v) out.append(py::make_tuple(p.file, p.line));
  return out;
}

py::dict report_dict(const BinanceReport& r) {
  py::dict d;
  d["lines"] = counts(r.lines);
  d["diffs_applied"] = r.diffs_applied;
  d["diffs_stale"] = r.diffs_stale;
  d["diffs_unapplied"] = r.diffs_unapplied;
  d["diffs_duplicate"] = r.diffs_duplicate;
  d["diffs_behind"] = r.diffs_behind;
  d["trades_excluded"] = counts(r.trades_excluded);
  d["ignored_streams"] = counts(r.ignored_streams);
  d["skipped_streams"] = counts(r.skipped_streams);
  py::list gaps;
  for (const auto& g : r.gaps) {
    gaps.append(py::make_tuple(g.at.file, g.at.line, g.prev_u, g.U, g.u,
                               g.has_pu ? py::object(py::int_(g.pu)) : py::object(py::none()), g.expected));
  }
  d["gaps"] = gaps;
  d["resyncs"] = r.resyncs;
  d["duplicate_lines"] = places(r.duplicate_lines);
  d["duplicate_diffs"] = places(r.duplicate_diffs);
  d["behind_diffs"] = places(r.behind_diffs);
  py::list back;
  for (const auto& c : r.clock_back) back.append(py::make_tuple(c.at.file, c.at.line, c.from_ns, c.to_ns));
  d["clock_back"] = back;
  d["clock_back_count"] = r.clock_back_count;
  d["clock_back_max_ns"] = r.clock_back_max_ns;
  return d;
}

py::dict scan_dict(const ScanResult& r) {
  py::dict d;
  d["symbol"] = r.symbol;
  d["market"] = r.market;
  d["first_local_ns"] = r.first_local_ns;
  d["ts_unit"] = r.ts_unit;
  d["has_snapshot"] = r.has_snapshot;
  d["non_blank_lines"] = r.non_blank_lines;
  return d;
}

py::array_t<Event> events_array(std::vector<Event>&& v) {
  auto* owned = new std::vector<Event>(std::move(v));
  py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<Event>*>(p); });
  return py::array_t<Event>({owned->size()}, {sizeof(Event)}, owned->data(), free_when_done);
}

std::function<void(uint64_t, uint64_t)> progress_fn(const py::object& cb) {
  if (cb.is_none()) return {};
  return [cb](uint64_t done, uint64_t total) {
    py::gil_scoped_acquire gil;
    cb(done, total);
  };
}

}  // namespace

void bind_feed(py::module_& m) {
  g_feed_error = PyErr_NewException("trader._core.FeedParseError", PyExc_ValueError, nullptr);
  m.add_object("FeedParseError", py::handle(g_feed_error).inc_ref());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const FeedError& e) {
      // The message may quote bytes of a damaged line: decode with replacement, never fail here.
      const std::string what = e.what();
      py::object msg = py::reinterpret_steal<py::object>(
          PyUnicode_DecodeUTF8(what.data(), static_cast<Py_ssize_t>(what.size()), "replace"));
      py::tuple args = py::make_tuple(e.file, e.line, msg, e.hint);
      PyErr_SetObject(g_feed_error, args.ptr());
    }
  });

  py::class_<BinanceScanner>(m, "BinanceScanner", "Scanner of one Binance raw feed file fed in chunks.")
      .def(py::init<>())
      .def(
          "feed",
          [](BinanceScanner& s, const py::bytes& chunk) {
            std::string_view v = chunk;
            py::gil_scoped_release nogil;
            return s.feed(v.data(), v.size());
          },
          py::arg("chunk"), "Feed decompressed bytes; False once the answer is known.")
      .def("end", &BinanceScanner::end)
      .def_property_readonly("lines_read", &BinanceScanner::lines_read)
      .def("result", [](const BinanceScanner& s) { return scan_dict(s.result()); });
  m.def(
      "scan_binance_file",
      [](const std::string& path) {
        ScanResult r;
        {
          py::gil_scoped_release nogil;
          r = scan_binance_file(path);
        }
        return scan_dict(r);
      },
      py::arg("path"), "Instrument, first local time (ns), time unit and snapshot presence of a gzip or plain file.");

  py::class_<BinanceParser>(m, "BinanceParser",
                            "Streaming parser of one sequence of Binance raw feed files (cpp/feed/binance_feed.h).")
      .def(py::init([](std::string symbol, bool futures, bool resync, std::vector<std::string> ignore_streams,
                       std::vector<std::string> non_book_streams) {
             BinanceOptions o;
             o.symbol = std::move(symbol);
             o.futures = futures;
             o.resync = resync;
             o.ignore_streams = std::move(ignore_streams);
             o.non_book_streams = std::move(non_book_streams);
             return std::make_unique<BinanceParser>(std::move(o));
           }),
           py::arg("symbol"), py::arg("futures"), py::arg("resync"), py::arg("ignore_streams"),
           py::arg("non_book_streams"))
      .def(
          "parse_file",
          [](BinanceParser& p, int file, const std::string& path, std::optional<int64_t> until_ns,
             const py::object& progress) {
            auto fn = progress_fn(progress);
            py::gil_scoped_release nogil;
            return p.parse_file(file, path, until_ns, fn);
          },
          py::arg("file"), py::arg("path"), py::arg("until_ns") = py::none(), py::arg("progress") = py::none(),
          "Parse a gzip or plain file; False if it stopped at until_ns. progress(read, total) in compressed bytes.")
      .def("begin_file", &BinanceParser::begin_file, py::arg("file"), py::arg("until_ns") = py::none())
      .def(
          "feed",
          [](BinanceParser& p, const py::bytes& chunk) {
            std::string_view v = chunk;
            py::gil_scoped_release nogil;
            return p.feed(v.data(), v.size());
          },
          py::arg("chunk"), "Feed decompressed bytes; False once until_ns is reached.")
      .def("end_file", &BinanceParser::end_file)
      .def_property_readonly("lines_read", &BinanceParser::lines_read)
      .def(
          "finish",
          [](BinanceParser& p, const std::string& tick, const std::string& lot) {
            BinanceResult r;
            {
              py::gil_scoped_release nogil;
              r = p.finish(units_arg(tick, "tick"), units_arg(lot, "lot"));
            }
            return py::make_tuple(events_array(std::move(r.events)), report_dict(r.report), u128_to_str(r.tick),
                                  u128_to_str(r.lot));
          },
          py::arg("tick") = "", py::arg("lot") = "",
          "(events, report, tick units, lot units); tick/lot: decimal digits of 1e-12 units, '' = gcd of the data.");
}
