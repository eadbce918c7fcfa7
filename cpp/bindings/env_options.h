// The env's options from Python keyword arguments (the table of env/spec.h; unknown keys refused,
// every value validated), shared by the env pool's and the live kernel's bindings.
#pragma once

#include <pybind11/pybind11.h>

#include "env/spec.h"

trader::EnvConfig parse_config(const pybind11::dict& kw);
// The options' table: dicts name, type, default, unit, doc, choices.
pybind11::list env_spec();
// Every option of a config, by name.
pybind11::dict options_dict(const trader::EnvConfig& c);
