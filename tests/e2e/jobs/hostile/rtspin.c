// rtspin: spins forever at the highest real-time priority (SCHED_FIFO 99),
// what `chrt -f 99 sh -c 'while :; do :; done'` does, for guests whose
// busybox has no chrt. tests/e2e/run_test.cpp builds it statically and
// uploads it: with RT throttling off, nothing else runs on its vCPU.
#include <sched.h>
#include <stdio.h>

int main(void) {
  const struct sched_param p = {.sched_priority = 99};
  if (sched_setscheduler(0, SCHED_FIFO, &p) != 0) {
    perror("rtspin: sched_setscheduler");
    return 2;
  }
  for (;;) {
  }
}
