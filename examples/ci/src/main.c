// sum: prints the sum of each stdin line's integers, one per line.
#include <stdio.h>

#include "sum.h"

int main(void) {
  char line[4096];
  int status = 0;
  for (long n = 1; fgets(line, sizeof line, stdin) != NULL; n++) {
    long long total;
    if (!sum_line(line, &total)) {
      fprintf(stderr, "sum: line %ld: not a list of integers\n", n);
      status = 1;
      continue;
    }
    printf("%lld\n", total);
  }
  return status;
}
