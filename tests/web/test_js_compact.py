"""The snippet's whitespace compactor: what it removes, what it must copy as written, and the served bundles parse."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.web.js_compact import CompactError, compact_js
from gateway.web.snippets import build_bundles

CASES = [
    ("var a = 1;\nif (a) {\n  a += 2;\n}", "var a=1;if(a){a+=2;}"),
    ("return typeof x == 'y';", "return typeof x=='y';"),
    # Strings and template literals are copied as written, spaces, quotes and slashes included.
    ("var s = 'a  b // c' + \"d ' e\" + `f  ${g}  h`;", "var s='a  b // c'+\"d ' e\"+`f  ${g}  h`;"),
    ("var e = 'it\\'s  here';", "var e='it\\'s  here';"),
    # Regular expressions too, with quotes, backticks, spaces and slashes in a class.
    ("x = s.match(/^([\\w!#$%&'*+.^`|~-]{1,128})=/) || [];", "x=s.match(/^([\\w!#$%&'*+.^`|~-]{1,128})=/)||[];"),
    ("if (/a b/.test(s)) return /[/ ]+/g;", "if(/a b/.test(s))return/[/ ]+/g;"),
    ("return x.split(/; */);", "return x.split(/; */);"),
    # A "/" after a name, a number or ")" divides.
    ("var r = (a - b) / 1000 / c;", "var r=(a-b)/1000/c;"),
    # Spaces that carry meaning stay.
    ("a = b + +c - -d;", "a=b+ +c- -d;"),
    ("a = 1 .toString();", "a=1 .toString();"),
    ("for (var key in obj) delete obj[key];", "for(var key in obj)delete obj[key];"),
    # /*! comments (what a script sends) stay on a line of their own; other block comments go.
    ("/*! Sends: x. */\nvar a;\n/* note */ var b;", "/*! Sends: x. */\nvar a;var b;"),
]


@pytest.mark.parametrize(("source", "compacted"), CASES)
def test_compact_keeps_what_the_code_means(source: str, compacted: str) -> None:
    assert compact_js(source) == compacted


@pytest.mark.parametrize("source", ["var s = 'open;", "x = /open;\n", "/* open", 'var s = "a\nb";'])
def test_a_source_it_cannot_read_safely_is_refused(source: str) -> None:
    with pytest.raises(CompactError, match="unterminated"):
        compact_js(source)


def test_the_served_bundles_parse(tmp_path: Path) -> None:
    """Node parses what the gateway serves (the browser tests then run it)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the browser tests still run the bundles")
    bundles = build_bundles()
    for script in (bundles.consent, bundles.tracker):
        path = tmp_path / f"{script.name}.js"
        path.write_bytes(script.body)
        checked = subprocess.run([node, "--check", str(path)], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr
        assert script.body.startswith(b"/*! consent-gateway")  # the header that lists what is sent stays on top
