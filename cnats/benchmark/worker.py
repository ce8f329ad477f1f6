"""A benchmark worker process: ``python -m cnats.benchmark.worker WORKLOAD CLIENT URL MSGS SIZE UVLOOP SUBJECT``."""

import sys

from .workloads import main_worker

main_worker(sys.argv[1:])
