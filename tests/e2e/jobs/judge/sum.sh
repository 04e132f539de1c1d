#!/bin/sh
# The program tests/e2e/jobs/judge/judge.toml judges: the sum of each input
# line's two integers, one per line (as examples/judge/sum.sh); a line
# "hang" makes it sleep, for the time-limit case.
while read -r a b; do
  [ "$a" = hang ] && sleep 60
  echo $((a + b))
done
