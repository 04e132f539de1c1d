#include "runtime/serve/http_status.h"

namespace husk::serve {

int status_for(job::Verdict verdict) {
  switch (verdict) {
    case job::Verdict::kOk: return kStatusOk;
    case job::Verdict::kRuntimeError:
    case job::Verdict::kSignaled:
    case job::Verdict::kMemoryLimit:
    case job::Verdict::kOutputLimit:
    case job::Verdict::kWrongAnswer: return kStatusFunctionFailed;
    case job::Verdict::kTimeout: return kStatusTimeout;
    case job::Verdict::kInternal: return kStatusVmFailed;
  }
  return kStatusVmFailed;
}

const char* reason_phrase(int status) {
  switch (status) {
    case kStatusOk: return "OK";
    case kStatusBadRequest: return "Bad Request";
    case kStatusMethodNotAllowed: return "Method Not Allowed";
    case kStatusUnsupportedMedia: return "Unsupported Media Type";
    case kStatusBodyTooLarge: return "Payload Too Large";
    case kStatusFunctionFailed: return "Internal Server Error";
    case kStatusVmFailed: return "Bad Gateway";
    case kStatusBusy: return "Service Unavailable";
    case kStatusTimeout: return "Gateway Timeout";
    default: return "";
  }
}

}  // namespace husk::serve
