#!/bin/sh
# The program the judge example checks: prints the sum of each input line's
# two integers, one per line.
while read -r a b; do
  echo $((a + b))
done
