// Unit tests for sum.c: prints each failure and a tally, exits 1 on failure.
#include <stdio.h>

#include "sum.h"

static int passed, failed;

static void expect(const char *line, int ok, long long want) {
  long long got = 0;
  int got_ok = sum_line(line, &got);
  if (got_ok == ok && (!ok || got == want)) {
    passed++;
  } else {
    failed++;
    printf("FAIL: sum_line(\"%s\") = %d, %lld; want %d, %lld\n", line, got_ok, got, ok, want);
  }
}

int main(void) {
  expect("1 2", 1, 3);
  expect("  -5\t5 \n", 1, 0);
  expect("", 1, 0);
  expect("9223372036854775807 0", 1, 9223372036854775807LL);
  expect("9223372036854775807 1", 0, 0);
  expect("1 two", 0, 0);
  expect("3x", 0, 0);
  printf("sum_test: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
