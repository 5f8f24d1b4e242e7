"""training/heap.py: while a run trains, a large block comes from the heap and stays there when freed; outside, glibc
maps and unmaps it as by default (the negative control), and the defaults are back after the run. In a fresh
interpreter: a process that has trained before may serve the block from a free chunk already in its heap."""
import subprocess
import sys
from pathlib import Path

import pytest

from selfsup.training import heap

pytestmark = pytest.mark.skipif(heap._glibc() is None, reason="the C library is not glibc")

SCRIPT = r'''
import ctypes, importlib.util, sys
spec = importlib.util.spec_from_file_location("heap", sys.argv[1])
heap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(heap)
libc = heap._glibc()
BLOCK = 64 << 20  # above glibc's largest mmap threshold (32 MiB), like a first convolution's map at batch 256

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                              "uordblks", "fordblks", "keepcost")]

libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p

def mapped_while_held():
    block = libc.malloc(ctypes.c_size_t(BLOCK))
    assert block
    mapped = libc.mallinfo2().hblkhd
    libc.free(ctypes.c_void_p(block))
    return mapped, libc.mallinfo2().fordblks

before, _ = mapped_while_held()
assert before >= BLOCK, before  # glibc's default: a fresh mapping, returned when freed
with heap.retained_heap() as applies:
    assert applies
    with heap.retained_heap():  # nested runs (a search's candidates) keep it until the outer one ends
        pass
    during, free_after = mapped_while_held()
    assert during < BLOCK, during  # from the heap
    assert free_after >= BLOCK, free_after  # kept for the next step
after, _ = mapped_while_held()
assert after >= BLOCK, after  # the defaults are back
print("ok")
'''


def test_large_blocks_stay_in_the_heap_only_while_training():
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(Path(heap.__file__))], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
