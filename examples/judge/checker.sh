#!/bin/sh
# A checker for examples/judge/judge.toml: checker.sh INPUT EXPECTED OUTPUT.
# OK (exit 0) when OUTPUT has as many lines as EXPECTED and each line's first
# field equals EXPECTED's as a number ("7" = "7.0" = "+7"); WA (exit 1)
# otherwise; any other status is XX (the checker itself failed).
[ -r "$2" ] && [ -r "$3" ] || { echo "checker: cannot read $2 or $3" >&2; exit 2; }
awk '
  FILENAME == ARGV[1] { want[FNR] = $1; n = FNR; next }
  { got[FNR] = $1; m = FNR }
  END {
    if (m != n) exit 1
    for (i = 1; i <= n; i++) if (got[i] + 0 != want[i] + 0) exit 1
    exit 0
  }' "$2" "$3"
