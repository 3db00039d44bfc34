// Whole writes to a file descriptor.
#pragma once

#include <string_view>

#include "base/result.h"

namespace lai {

// Writes all of `bytes` (retrying short writes and EINTR). Errors: ErrnoError("write " + what).
Status WriteAll(int fd, std::string_view bytes, std::string_view what);

}  // namespace lai
