"""Run `python pix2pix.py ARGS` as if the disk filled up: no file may grow past LIMIT bytes
(RLIMIT_FSIZE: a write beyond it fails with EFBIG, as a full disk fails with ENOSPC):

    python full_disk.py LIMIT ARGS...
"""
import os
import resource
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tools import cli  # noqa: E402

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with an error instead of killing us
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.exit(cli.main(sys.argv[2:]))
