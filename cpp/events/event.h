// The one market-data record of trader: 64 bytes, integers only.
//
// Every event file (events.npy) is an array of this struct; python/trader/data/events.py mirrors it
// with a numpy structured dtype and tests/test_events.py checks the two field by field.
// Layout idea from hftbacktest's 64-byte `Event`; fields are ours.
#pragma once

#include <cstddef>
#include <cstdint>

namespace trader {

// What an event is. Values are part of the file format: never renumber.
enum EventKind : uint8_t {
  kBookClear = 1,     // empty both sides of the book (start of a snapshot, or a gap in resync mode)
  kBookSnapshot = 2,  // one level of a full snapshot (price, qty = absolute size)
  kBookDelta = 3,     // one level of a depth diff (qty = new absolute size; 0 removes the level)
  kTrade = 4,         // one trade print (price, qty; side flag = aggressor side)
  kBookTicker = 5,    // best bid or best ask as published by the exchange (two events per ticker)
};

// Bit flags.
enum EventFlag : uint8_t {
  kFlagBid = 1 << 0,         // bid side (book events); buyer was the aggressor (trades)
  kFlagAsk = 1 << 1,         // ask side (book events); seller was the aggressor (trades)
  kFlagEndOfMessage = 1 << 2,  // last event of one exchange message: the book is consistent after it
};

struct Event {
  uint8_t kind;              // EventKind
  uint8_t flags;             // EventFlag bits
  uint16_t file;             // index of the source file in the dataset's metadata
  uint32_t line;             // 1-based line number in that source file
  int64_t exch_ts;           // exchange timestamp, ns since epoch; 0 = the exchange sent none
  int64_t local_ts;          // receive timestamp, ns since epoch
  int64_t price;             // ticks (price / tick_size)
  int64_t qty;               // lots (quantity / lot_size)
  uint64_t update_id;        // book: last update id `u` of the message; trade: trade id
  uint64_t first_update_id;  // book delta: first update id `U`; 0 otherwise
  uint64_t prev_update_id;   // book delta on futures: `pu`; snapshot: lastUpdateId; 0 otherwise
};

static_assert(sizeof(Event) == 64, "Event must stay 64 bytes: it is the on-disk format");
static_assert(alignof(Event) == 8, "Event must be 8-byte aligned");

inline bool is_book_event(const Event& e) {
  return e.kind == kBookClear || e.kind == kBookSnapshot || e.kind == kBookDelta;
}

}  // namespace trader
