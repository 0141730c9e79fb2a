"""painedge: a real-time pain monitor for the bedside, on an NVIDIA Jetson Nano."""

import os

# Before numpy loads (it reads this once): painedge's numpy work is small arrays, a frame at a time, and
# OpenBLAS's worker threads spin on sched_yield between calls. The demo daemon burnt 1.3 cores for 0.35
# core of work here until this; a bedside daemon needs its cores for the models. A value already set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
