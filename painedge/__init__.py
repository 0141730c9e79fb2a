"""painedge: a real-time pain monitor for the bedside, on an NVIDIA Jetson Nano."""

__version__ = "0.1.0"
