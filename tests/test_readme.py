"""The README's Python examples run as written (docs that no test runs drift from the code)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_run_in_order(monkeypatch):
    """Every ```python block, in order, in one namespace (later blocks reuse earlier imports),
    from the repository root as a reader runs them (one loads a committed expert model)."""
    monkeypatch.chdir(README.parent)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    for index, block in enumerate(blocks):
        code = "\n".join(re.sub(r"^> ?", "", line) for line in block.splitlines())  # blocks inside quotes
        exec(compile(code, f"README.md python block {index}", "exec"), namespace)
    assert namespace["info"]["executed_action"] == 0  # the protocol example's landmine
