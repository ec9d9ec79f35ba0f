#!/bin/sh
# no_aslr.sh PROGRAM [ARGS...] — runs PROGRAM with address-space randomisation turned off
# when the system allows it (setarch -R; containers may forbid the personality call), else
# as it is. ThreadSanitizer builds of the ring tests run through this.
arch=$(uname -m)
if command -v setarch >/dev/null 2>&1 && setarch "$arch" -R true 2>/dev/null; then
    exec setarch "$arch" -R "$@"
fi
exec "$@"
