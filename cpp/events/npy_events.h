// Reads an events.npy file (numpy format 1.0/2.0/3.0) into memory, checking that its dtype is the
// Event record field by field. Used by the C++ tests and tools; Python loads the same file with
// numpy.load.
#pragma once

#include <string>
#include <vector>

#include "events/event.h"

namespace trader {

// The numpy `descr` of Event, as numpy writes it in a .npy header.
extern const char* const kEventNpyDescr;

// Throws std::runtime_error naming the file and what was expected.
std::vector<Event> read_events_npy(const std::string& path);

}  // namespace trader
