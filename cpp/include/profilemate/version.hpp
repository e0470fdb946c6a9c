#pragma once

namespace profilemate {
// The package version, from src/profilemate/_version.py (the single source).
const char* version() noexcept;
}  // namespace profilemate
