#!/usr/bin/env python3
# tests/e2e/check_result_schema.py: validates `husk run` result files against
# docs/result.schema.json (JSON Schema draft 2020-12), for the e2e tests
# (tests/e2e/run_test.cpp). Needs python3-jsonschema.
#
# Usage: check_result_schema.py SCHEMA RESULT...
# Prints every violation as FILE: PATH: MESSAGE; exit 0 when all are valid,
# 1 when any is not, 2 when a file cannot be read.
import json
import sys

from jsonschema import Draft202012Validator


def main(argv):
    if len(argv) < 3:
        print("usage: check_result_schema.py SCHEMA RESULT...", file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            schema = json.load(f)
        Draft202012Validator.check_schema(schema)
        validator = Draft202012Validator(schema)
        bad = 0
        for path in argv[2:]:
            with open(path, encoding="utf-8") as f:
                result = json.load(f)
            for error in sorted(validator.iter_errors(result), key=lambda e: list(e.absolute_path)):
                where = "/".join(str(p) for p in error.absolute_path) or "(top)"
                print(f"{path}: {where}: {error.message}")
                bad += 1
    except (OSError, ValueError) as e:
        print(f"check_result_schema.py: {e}", file=sys.stderr)
        return 2
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
