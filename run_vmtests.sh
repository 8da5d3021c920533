#!/bin/sh
# The suite's runner lives where it would in a kernel tree; see its -h.
exec "$(dirname "$0")/tools/testing/selftests/mm/run_vmtests.sh" "$@"
