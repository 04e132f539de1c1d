// husk::Result<T>: the error-as-value type used everywhere in runtime/.
//
// runtime/ never throws on anything a guest or a user file can cause; every
// fallible call returns Result<T>. The alias hides tl::expected so that a move
// to std::expected (C++23) is a one-line change.
#pragma once

#include <cerrno>
#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace husk {

// What went wrong: an errno (0 when the failure is not a system call's) and a
// message that already carries its context ("open /x: No such file").
struct Error {
  int code = 0;
  std::string message;
};

template <typename T>
using Result = tl::expected<T, Error>;

using Unexpected = tl::unexpected<Error>;

// An error value with a plain message and no errno.
[[nodiscard]] inline Unexpected fail(std::string message) {
  return Unexpected(Error{0, std::move(message)});
}

// An error value for a failed system call: "context: strerror(errno)".
[[nodiscard]] Unexpected fail_errno(const std::string& context, int err = errno);

// Adds outer context to an error: "outer: inner".
[[nodiscard]] inline Unexpected wrap(const std::string& context, Error inner) {
  inner.message = context + ": " + inner.message;
  return Unexpected(std::move(inner));
}

}  // namespace husk

// Evaluates a Result expression; on error returns the error from the caller.
#define HUSK_TRY(expr)                                   \
  do {                                                   \
    auto husk_try_result_ = (expr);                      \
    if (!husk_try_result_) {                             \
      return ::husk::Unexpected(husk_try_result_.error()); \
    }                                                    \
  } while (0)

#define HUSK_CONCAT_INNER_(a, b) a##b
#define HUSK_CONCAT_(a, b) HUSK_CONCAT_INNER_(a, b)

// Declares `decl` from a Result expression's value or returns its error.
#define HUSK_TRY_ASSIGN(decl, expr) \
  HUSK_TRY_ASSIGN_IMPL_(HUSK_CONCAT_(husk_try_, __LINE__), decl, expr)
#define HUSK_TRY_ASSIGN_IMPL_(tmp, decl, expr)  \
  auto tmp = (expr);                            \
  if (!tmp) {                                   \
    return ::husk::Unexpected(tmp.error());     \
  }                                             \
  decl = std::move(*tmp)
