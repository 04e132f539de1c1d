#!/bin/sh
# The checker of tests/e2e/jobs/judge/judge.toml: checker.sh INPUT EXPECTED
# OUTPUT. OK (exit 0) when OUTPUT's first line equals EXPECTED's as a number
# ("7" = "7.0"); else WA (exit 1), saying what differs on stdout.
want=$(head -n 1 "$2")
got=$(head -n 1 "$3")
awk -v w="$want" -v g="$got" 'BEGIN { exit !(w + 0 == g + 0) }' && exit 0
echo "checker-says: wanted $want, got $got"
exit 1
