#!/bin/sh
echo run-sh-ran
