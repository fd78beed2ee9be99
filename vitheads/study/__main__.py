"""`python -m vitheads.study run|gather`: the replication study (vitheads.study.runner)."""

import sys

from vitheads.study.runner import main

main(sys.argv[1:])
