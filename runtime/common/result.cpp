#include "runtime/common/result.h"

#include <cstring>

namespace husk {

Unexpected fail_errno(const std::string& context, int err) {
  return Unexpected(Error{err, context + ": " + std::strerror(err)});
}

}  // namespace husk
