"""Every ```python block of the README runs as written (on the CPU: the reference GRU)."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(code):
    if "import keras" in code:
        pytest.importorskip("keras")
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
