import gc

from .cli import main

code = main()
# Interpreter shutdown collects garbage over every object torch, scikit-learn and SciPy created (about 1 s on a
# 2-core machine). Collect what is garbage now, while the interpreter is whole (reference cycles with finalizers,
# such as DDP's reducers, go before their process group), then exempt the survivors from shutdown's collections:
# modules are still torn down and atexit handlers still run.
gc.collect()
gc.freeze()
raise SystemExit(code)
