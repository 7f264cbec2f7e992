"""Every ```python block of the README and of docs/keras.md runs as written (on the CPU: the
reference GRU). Blocks of one page share a namespace, in order, like a reader's session."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "docs" / "keras.md"]


def _blocks(page):
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_examples_run(page):
    blocks = _blocks(page)
    assert len(blocks) >= 2
    if any("import keras" in code for code in blocks):
        pytest.importorskip("keras")
    namespace = {"__name__": "docs"}
    for index, code in enumerate(blocks):
        exec(compile(code, f"{page.name} block {index}", "exec"), namespace)
