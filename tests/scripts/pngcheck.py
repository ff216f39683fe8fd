"""What the figure tests share (tests/scripts/test_plot_power.py, test_plot_report.py,
test_bench.py): failing
with a reason, running a command, and a PNG's size read from its IHDR chunk. Standard library only.
"""
import struct, subprocess, sys

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def run(cmd, env=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != PNG_SIGNATURE:
        fail(f"{path} does not start with the PNG signature: {head[:8]!r}")
    if head[12:16] != b"IHDR":
        fail(f"{path}: the first chunk is {head[12:16]!r}, not IHDR")
    return struct.unpack(">II", head[16:24])
