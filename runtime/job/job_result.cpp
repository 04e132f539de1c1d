#include "runtime/job/job_result.h"

namespace husk::job {

const char* verdict_code(Verdict v) {
  switch (v) {
    case Verdict::kOk: return "OK";
    case Verdict::kRuntimeError: return "RE";
    case Verdict::kSignaled: return "SG";
    case Verdict::kTimeout: return "TO";
    case Verdict::kMemoryLimit: return "ML";
    case Verdict::kOutputLimit: return "OL";
    case Verdict::kWrongAnswer: return "WA";
    case Verdict::kInternal: return "XX";
  }
  return "XX";
}

const char* verdict_meaning(Verdict v) {
  switch (v) {
    case Verdict::kOk: return "ok";
    case Verdict::kRuntimeError: return "runtime error (non-zero exit)";
    case Verdict::kSignaled: return "killed by a signal";
    case Verdict::kTimeout: return "time limit exceeded";
    case Verdict::kMemoryLimit: return "memory limit exceeded";
    case Verdict::kOutputLimit: return "output limit exceeded";
    case Verdict::kWrongAnswer: return "wrong answer";
    case Verdict::kInternal: return "husk or the VM failed";
  }
  return "?";
}

}  // namespace husk::job
