// Boost.Asio for the control plane. Boost 1.74's asio/awaitable.hpp uses std::exchange without
// including <utility>, which C++20 libstdc++ no longer pulls in indirectly.
#pragma once

#include <utility>

#include <boost/asio.hpp>
