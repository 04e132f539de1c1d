// fmt's compiled part, built once for the static husk.
//
// Debian ships fmt as a shared library and as headers (format-inl.h holds
// the definitions). The static husk cannot link the shared library, and
// fmt header-only (FMT_HEADER_ONLY) put those definitions, the float
// formatting tables among them, into every file that formats. So the static
// build leaves FMT_HEADER_ONLY undefined, which keeps them out of the
// headers, and this one file compiles them, with the instantiations that
// format.h declares but only format-inl.h defines.
#ifdef FMT_HEADER_ONLY
#error "fmt_compiled.cpp is for builds without FMT_HEADER_ONLY"
#endif

#include <locale>

#include <fmt/format-inl.h>

FMT_BEGIN_NAMESPACE
namespace detail {

template auto dragonbox::to_decimal(float x) noexcept -> dragonbox::decimal_fp<float>;
template auto dragonbox::to_decimal(double x) noexcept -> dragonbox::decimal_fp<double>;

template locale_ref::locale_ref(const std::locale& loc);
template auto locale_ref::get<std::locale>() const -> std::locale;

template auto thousands_sep_impl(locale_ref) -> thousands_sep_result<char>;
template auto decimal_point_impl(locale_ref) -> char;
template auto thousands_sep_impl(locale_ref) -> thousands_sep_result<wchar_t>;
template auto decimal_point_impl(locale_ref) -> wchar_t;

}  // namespace detail
FMT_END_NAMESPACE
