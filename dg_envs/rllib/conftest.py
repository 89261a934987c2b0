"""Without Ray RLlib installed (the optional ``rllib`` extra) the doctests of the modules that need it are not collected."""

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("ray") is not None else ["accounting.py", "config.py", "learners.py", "protocol.py"]
