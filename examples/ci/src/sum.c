#include "sum.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

bool sum_line(const char *line, long long *total) {
  long long acc = 0;
  const char *p = line;
  for (;;) {
    while (isspace((unsigned char)*p)) p++;
    if (*p == '\0') break;
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno == ERANGE) return false;
    if (*end != '\0' && !isspace((unsigned char)*end)) return false;
    if (__builtin_add_overflow(acc, v, &acc)) return false;
    p = end;
  }
  *total = acc;
  return true;
}
