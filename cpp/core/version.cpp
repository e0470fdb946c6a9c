#include "profilemate/version.hpp"

namespace profilemate {
const char* version() noexcept { return PROFILEMATE_VERSION; }
}  // namespace profilemate
